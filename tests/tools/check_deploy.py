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

import yaml

problems = []


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
    check(sts["spec"]["replicas"] == 7, "7 validators expected")

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

    np = one(objs, "NetworkPolicy")
    admitted = sorted(p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"])
    check(admitted == sorted([peer, ops]), f"NetworkPolicy admits {admitted}, expected peer and ops only")
    check(np["spec"]["policyTypes"] == ["Ingress"], "NetworkPolicy must govern ingress")

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

    for p in problems:
        print("ERROR", p)
    print(f"deployment consistency: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
