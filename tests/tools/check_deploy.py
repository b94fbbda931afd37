#!/usr/bin/env python3
"""Cross-object checks on rendered manifests that no schema can express:
the ports, paths and names in the validator's config agree with the
StatefulSet, Service, NetworkPolicy, PodMonitor and Istio policy, and the
pods keep the hardening the base promises.

Usage: check_deploy.py RENDERED_OVERLAY.yaml RENDERED_ISTIO.yaml
Prints every problem; exits 1 if there is any.
"""

import ipaddress
import sys
import tomllib
from pathlib import Path

import yaml

problems = []
ROOT = Path(__file__).resolve().parents[2]


def check(cond, message):
    if not cond:
        problems.append(message)


def port_of(addr):
    host, _, port = addr.rpartition(":")
    return host, int(port)


def one(objs, kind):
    found = [o for o in objs if o["kind"] == kind]
    check(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0] if found else {}


def documented_settings():
    """The "Settings" table of docs/deploy.md: setting -> its `value`."""
    text = (ROOT / "docs/deploy.md").read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    settings = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1].startswith("`"):
            settings[cells[0]] = cells[1].strip("`")
    return settings


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        objs = [o for o in yaml.safe_load_all(f) if o]
    with open(sys.argv[2], encoding="utf-8") as f:
        istio = [o for o in yaml.safe_load_all(f) if o]

    cm = one(objs, "ConfigMap")
    config = tomllib.loads(cm["data"]["validator.toml"])
    _, peer = port_of(config["listen"]["peer"])
    _, ops = port_of(config["listen"]["ops"])
    app_host, app = port_of(config["listen"]["app"])
    check(ipaddress.ip_address(app_host).is_loopback, "listen.app must be a loopback address")

    namespace = one(objs, "Namespace")
    injected = namespace["metadata"].get("labels", {}).get("istio-injection") == "enabled"

    svc = one(objs, "Service")
    sts = one(objs, "StatefulSet")
    ns = sts["metadata"]["namespace"]
    check(svc.get("spec", {}).get("clusterIP") == "None", "the peer Service must be headless")
    check(svc["spec"].get("publishNotReadyAddresses") is True, "starting validators must be discoverable")
    check(sts["spec"]["serviceName"] == svc["metadata"]["name"], "StatefulSet serviceName != Service")
    check(
        config["discovery"]["dns"] == f"{svc['metadata']['name']}.{ns}.svc.cluster.local",
        "[discovery] dns must name the headless Service",
    )
    check(config["discovery"]["port"] == peer, "[discovery] port != listen.peer")
    check([p["port"] for p in svc["spec"]["ports"]] == [peer], "Service must expose only the peer port")
    # One pod per static member: every member is an epoch-log voter.
    members = sorted(m["id"] for m in config["members"])
    check(
        members == [f"validator-{i}" for i in range(sts["spec"]["replicas"])],
        f"replicas {sts['spec']['replicas']} != static members {members}",
    )

    pod = sts["spec"]["template"]
    spec = pod["spec"]
    check(spec.get("automountServiceAccountToken") is False, "no API token in the pod")
    sidecars = [c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    check([c["name"] for c in sidecars] == ["validator"], "the validator must be the native sidecar")
    validator = sidecars[0] if sidecars else {}
    ports = {p["name"]: p["containerPort"] for p in validator.get("ports", [])}
    check(ports == {"peer": peer, "ops": ops}, f"container ports {ports} != config peer/ops")
    check(app not in ports.values(), "the app port must not be declared")
    env = [e["name"] for e in validator.get("env", [])]
    check(
        "POD_INDEX" in env and "PQVAULT_ID" in env and env.index("POD_INDEX") < env.index("PQVAULT_ID"),
        "POD_INDEX must precede PQVAULT_ID ($(POD_INDEX) expands only earlier variables)",
    )
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = validator.get(probe, {}).get("httpGet", {})
        check(get.get("port") == "ops" and get.get("path") == path, f"{probe} must GET {path} on ops")
    ann = pod["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/port") == str(ops), "prometheus.io/port != listen.ops")
    check(ann.get("prometheus.io/path") == "/metrics", "prometheus.io/path must be /metrics")

    pod_sc = spec.get("securityContext", {})
    check(pod_sc.get("runAsNonRoot") is True and pod_sc.get("runAsUser", 0) != 0, "pod must run as non-root")
    for c in spec.get("initContainers", []) + spec["containers"]:
        sc = c.get("securityContext", {})
        check(sc.get("readOnlyRootFilesystem") is True, f"{c['name']}: read-only root filesystem")
        check(sc.get("allowPrivilegeEscalation") is False, f"{c['name']}: no privilege escalation")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{c['name']}: drop all capabilities")
        res = c.get("resources", {})
        check({"cpu", "memory"} <= set(res.get("requests", {})), f"{c['name']}: requests")
        check({"cpu", "memory"} <= set(res.get("limits", {})), f"{c['name']}: limits")

    # Every path in the config lies under a mount of the validator container.
    mounts = {m["mountPath"]: m["name"] for m in validator.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
    paths = [config["data_dir"], config["identity_key"], config["trusted_signer"], config["import_dir"]]
    paths += [config["tls"][k] for k in ("ca", "cert", "key")]
    for path in paths:
        under = [m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/")]
        check(len(under) == 1, f"{path} is not under exactly one mount")
        if not under:
            continue
        vol = mounts[under[0]]
        check(vol in volumes or vol in claims, f"mount {vol} has no volume")
        items = volumes.get(vol, {}).get("secret", {}).get("items")
        if items is not None:
            name = path[len(under[0]) :].lstrip("/")
            check(name in [i["path"] for i in items], f"{path}: secret {vol} does not project it")
    check(mounts.get("/var/lib/pqvault") in claims, "data and identity must live on the pod's own volume")
    secrets = {v["secret"]["secretName"] for v in volumes.values() if "secret" in v}
    check(secrets == {"pqvault-trust", "pqvault-vault"}, f"pod template secrets {secrets}: no per-pod key")

    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    np = next((o for o in policies if o["metadata"]["name"] == "pqvault"), {})
    admitted = sorted(p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"])
    check(admitted == sorted([peer, ops]), f"NetworkPolicy admits {admitted}, expected peer and ops only")
    check(np["spec"]["policyTypes"] == ["Ingress", "Egress"], "NetworkPolicy must govern ingress and egress")
    # Egress, over every policy that selects the validators: the peer port
    # to validator pods, DNS, and under Istio istiod's 15012; nothing else.
    egress = sorted(
        (p["protocol"], p["port"])
        for pol in policies
        if pol["spec"]["podSelector"] == np["spec"]["podSelector"]
        for rule in pol["spec"].get("egress", [])
        for p in rule["ports"]
    )
    expected = [("TCP", 53), ("TCP", peer), ("UDP", 53)]
    if injected:
        expected = sorted(expected + [("TCP", 15012)])
    check(egress == expected, f"egress allows {egress}, expected {expected}")
    for pol in policies:
        for rule in pol["spec"].get("egress", []):
            check(rule.get("to"), f"NetworkPolicy/{pol['metadata']['name']}: an egress rule without 'to' opens every destination")

    pdb = one(objs, "PodDisruptionBudget")
    check(pdb["spec"].get("maxUnavailable") == 1, "PodDisruptionBudget must allow one validator down")
    pm = one(objs, "PodMonitor")
    check([e["port"] for e in pm["spec"]["podMetricsEndpoints"]] == ["ops"], "PodMonitor must scrape ops")

    allowed = sorted(
        int(p)
        for pol in istio
        if pol["kind"] == "AuthorizationPolicy"
        for rule in pol["spec"].get("rules", [])
        for to in rule.get("to", [])
        for p in to["operation"].get("ports", [])
    )
    check(allowed == sorted([peer, ops]), f"AuthorizationPolicy allows ports {allowed}")
    for pol in istio:
        check(pol["metadata"].get("namespace") == ns, f"{pol['kind']}/{pol['metadata']['name']} not in {ns}")

    # The scraper: the settings docs/deploy.md names are the ones the
    # NetworkPolicy admits and the AuthorizationPolicy's principal says.
    settings = documented_settings()
    scraper_ns = settings.get("scraper namespace")
    scraper_sa = settings.get("scraper service account")
    (ops_rule,) = [r for r in np["spec"]["ingress"] if [p["port"] for p in r["ports"]] == [ops]] or [{}]
    selectors = [peer.get("namespaceSelector", {}).get("matchLabels", {}) for peer in ops_rule.get("from", [])]
    check(
        selectors == [{"kubernetes.io/metadata.name": scraper_ns}],
        f"NetworkPolicy admits the ops port from namespaces {selectors}, docs/deploy.md says {scraper_ns!r}",
    )
    principals = [
        p
        for pol in istio
        if pol["kind"] == "AuthorizationPolicy"
        for rule in pol["spec"].get("rules", [])
        if [p for to in rule.get("to", []) for p in to["operation"].get("ports", [])] == [str(ops)]
        for src in rule.get("from", [])
        for p in src["source"].get("principals", [])
    ]
    check(
        principals == [f"cluster.local/ns/{scraper_ns}/sa/{scraper_sa}"],
        f"ops port principals {principals} != the documented scraper {scraper_ns}/{scraper_sa}",
    )

    # Injected pods stay within Pod Security "restricted" only with the
    # Istio CNI plugin (no istio-init container with NET_ADMIN and NET_RAW).
    if injected:
        with open(ROOT / "istio/install/istio-pqc.yaml", encoding="utf-8") as f:
            install = yaml.safe_load(f)["spec"]
        check(install.get("components", {}).get("cni", {}).get("enabled") is True, "Istio install: components.cni.enabled must be true")
        check(install["values"]["pilot"].get("cni", {}).get("enabled") is True, "Istio install: values.pilot.cni.enabled must be true")

    for p in problems:
        print("ERROR", p)
    print(f"deployment consistency: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
