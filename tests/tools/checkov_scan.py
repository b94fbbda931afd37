#!/usr/bin/env python3
"""checkov (pinned in .ci/install-tools) over rendered kustomizations.

  checkov_scan.py baseline BASELINE.yaml NAME=RENDERED.yaml...
      One checkov run over every rendered kustomization; prints passed and
      failed per kustomization; exits 1 if a finding is not in the baseline
      (a new finding) or a baseline entry no longer occurs (a stale one).

  checkov_scan.py restricted NAME=RENDERED.yaml...
      Pod Security "restricted", as far as checkov's checks reach
      (docs/decisions.md D31): every pod-bearing object passes each check
      that CONTROLS maps to a control of the standard, and each of those
      checks is shown to be live: the first object with a pod template,
      changed to break that one control, fails it (one more checkov run).

checkov runs offline (--skip-download); a missing checkov fails, it never
skips.
"""

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

POD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}


def pod_spec(obj):
    spec = obj["spec"]
    if obj["kind"] == "Pod":
        return spec
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    return spec["template"]["spec"]


def validator(spec):
    """The native sidecar (init container with restartPolicy Always), else the first init container."""
    inits = spec.get("initContainers", [])
    return next((c for c in inits if c.get("restartPolicy") == "Always"), inits[0] if inits else None)


def app(spec):
    return spec["containers"][0]


def sc(container):
    return container.setdefault("securityContext", {})


# (control of the Pod Security Standards, profile, checkov check, the change
# that breaks the control in a compliant object). checkov evaluates
# runAsNonRoot and runAsUser on `containers` only, the rest on init
# containers too: each change is made where checkov looks.
CONTROLS = [
    ("Host Namespaces: hostNetwork", "baseline", "CKV_K8S_19", lambda s: s.update(hostNetwork=True)),
    ("Host Namespaces: hostPID", "baseline", "CKV_K8S_17", lambda s: s.update(hostPID=True)),
    ("Host Namespaces: hostIPC", "baseline", "CKV_K8S_18", lambda s: s.update(hostIPC=True)),
    ("Privileged Containers", "baseline", "CKV_K8S_16", lambda s: sc(validator(s) or app(s)).update(privileged=True)),
    (
        "Capabilities (baseline: nothing beyond the default set; restricted: only NET_BIND_SERVICE)",
        "baseline",
        "CKV_K8S_25",
        lambda s: sc(validator(s) or app(s)).setdefault("capabilities", {}).update(add=["SYS_PTRACE"]),
    ),
    (
        "Host Ports",
        "baseline",
        "CKV_K8S_26",
        lambda s: (validator(s) or app(s)).setdefault("ports", [{"containerPort": 7443}])[0].update(hostPort=7443),
    ),
    (
        "Seccomp (RuntimeDefault or Localhost)",
        "restricted",
        "CKV_K8S_31",
        lambda s: s["securityContext"].update(seccompProfile={"type": "Unconfined"}),
    ),
    (
        "Privilege Escalation",
        "restricted",
        "CKV_K8S_20",
        lambda s: sc(validator(s) or app(s)).update(allowPrivilegeEscalation=True),
    ),
    ("Running as Non-root", "restricted", "CKV_K8S_23", lambda s: sc(app(s)).update(runAsNonRoot=False)),
    ("Running as Non-root user (uid 0)", "restricted", "CKV_K8S_40", lambda s: sc(app(s)).update(runAsUser=0)),
    (
        "Capabilities: drop ALL",
        "restricted",
        "CKV_K8S_37",
        lambda s: sc(validator(s) or app(s)).pop("capabilities", None),
    ),
    (
        "Capabilities: NET_RAW (what istio-init adds without the CNI plugin)",
        "baseline",
        "CKV_K8S_28",
        lambda s: sc(validator(s) or app(s)).update(capabilities={"add": ["NET_ADMIN", "NET_RAW"]}),
    ),
]


def checkov(files):
    """Runs checkov once over copies of `files` (name -> path); returns
    {name: {"passed": [(check, resource)], "failed": [(check, resource)]}}."""
    with tempfile.TemporaryDirectory() as d:
        names = {}
        for name, path in files.items():
            base = name.replace("/", "-") + ".yaml"
            shutil.copy(path, os.path.join(d, base))
            names["/" + base] = name
        out = subprocess.run(
            ["checkov", "-d", d, "--framework", "kubernetes", "-o", "json", "--skip-download"],
            capture_output=True,
            text=True,
            check=False,
        )
    # 0: no failed check, 1: some failed; anything else is checkov failing.
    if out.returncode not in (0, 1):
        sys.exit(f"checkov exited {out.returncode}:\n{out.stderr[-4000:]}")
    report = json.loads(out.stdout)
    reports = report if isinstance(report, list) else [report]
    results = {name: {"passed": [], "failed": []} for name in files}
    for rep in reports:
        if rep.get("check_type") != "kubernetes":
            continue
        for key, kind in (("passed_checks", "passed"), ("failed_checks", "failed")):
            for c in rep["results"].get(key, []):
                results[names[c["file_path"]]][kind].append((c["check_id"], c["resource"]))
        if rep["results"].get("parsing_errors"):
            sys.exit(f"checkov could not parse {rep['results']['parsing_errors']}")
    return results


def parse_files(args):
    files = {}
    for a in args:
        name, _, path = a.partition("=")
        files[name] = path
    return files


def baseline(path, files):
    with open(path, encoding="utf-8") as f:
        accepted = yaml.safe_load(f)["accepted"]
    for entry in accepted:
        if not entry.get("reason", "").strip():
            sys.exit(f"baseline entry without a reason: {entry}")
    allowed = {(e["kustomization"], e["check"], e["resource"]) for e in accepted}
    results = checkov(files)
    found = set()
    for name in files:
        r = results[name]
        print(f"{name}: passed {len(r['passed'])}, failed {len(r['failed'])}")
        for check, resource in sorted(r["failed"]):
            found.add((name, check, resource))
    new = sorted(found - allowed)
    stale = sorted(e for e in allowed - found if e[0] in files)
    for n in new:
        print("NEW FINDING (fix it, or accept it in the baseline with a reason):", *n)
    for s in stale:
        print("STALE BASELINE ENTRY (no longer found: remove it):", *s)
    print(f"checkov: {len(found)} finding(s), {len(found) - len(new)} baselined, {len(new)} new, {len(stale)} stale")
    return 1 if new or stale else 0


def restricted(files):
    problems = []
    objects = {}
    for name, path in files.items():
        with open(path, encoding="utf-8") as f:
            objects[name] = [o for o in yaml.safe_load_all(f) if o and o["kind"] in POD_KINDS]
    results = checkov(files)
    for name, objs in objects.items():
        passed, failed = set(results[name]["passed"]), set(results[name]["failed"])
        for obj in objs:
            resource = f"{obj['kind']}.{obj['metadata'].get('namespace', 'default')}.{obj['metadata']['name']}"
            for control, _, check, _ in CONTROLS:
                if (check, resource) in failed or (check, resource) not in passed:
                    problems.append(f"{name} {resource}: {control} ({check}) not passed")
    # Each mapped check is live: breaking its control fails it.
    name, objs = next((n, o) for n, o in objects.items() if o)
    target = objs[0]
    mutated = {}
    with tempfile.TemporaryDirectory() as d:
        for i, (control, _, check, change) in enumerate(CONTROLS):
            obj = copy.deepcopy(target)
            change(pod_spec(obj))
            path = os.path.join(d, f"mutation-{i}.yaml")
            with open(path, "w", encoding="utf-8") as f:
                yaml.safe_dump(obj, f)
            mutated[f"mutation-{i}"] = path
        caught = checkov(mutated)
    for i, (control, profile, check, _) in enumerate(CONTROLS):
        live = check in {c for c, _ in caught[f"mutation-{i}"]["failed"]}
        if not live:
            problems.append(f"{check} did not fail on {target['kind']}/{target['metadata']['name']} changed to break {control}")
        print(f"{profile:10} {control}: {check}, {'caught when broken' if live else 'NOT caught'}")
    for p in problems:
        print("ERROR", p)
    pods = sum(len(o) for o in objects.values())
    print(f"pod security (checkov's reach): {len(CONTROLS)} controls on {pods} pod-bearing object(s), {len(problems)} problem(s)")
    return 1 if problems else 0


def main():
    mode = sys.argv[1]
    if mode == "baseline":
        return baseline(sys.argv[2], parse_files(sys.argv[3:]))
    if mode == "restricted":
        return restricted(parse_files(sys.argv[2:]))
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
