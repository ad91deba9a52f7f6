#!/usr/bin/env node
// Checks deploy/kubernetes without a cluster or kubectl:
//   1. every object validates against the Kubernetes API schema (kubernetes-models, from npm,
//      installed by scripts/setup.sh into .cache/deploy-tools), and no field name is unknown to
//      that schema (a typo such as `readinesProbe` is otherwise silently dropped);
//   2. kustomization.yaml lists every manifest in the folder, and every file it lists exists;
//   3. the daemons' flags in container args and in the ConfigMap's TOML exist in the real
//      binaries' --help;
//   4. the pieces agree: probes on gRPC at the container's port, kvpoold's --listen port, the
//      hugepages request equal to the pool capacity, config keys the volumes name, Service
//      selectors that match the Deployment, Prometheus scrape annotations on both workloads
//      at the port each daemon serves metrics on;
//   5. the optional Prometheus-operator folder (deploy/kubernetes/monitoring, not in the base
//      kustomization because it needs the ServiceMonitor CRD): the ServiceMonitor validates
//      against the operator's schema (@kubernetes-models/prometheus-operator), selects its
//      metrics Services, which select the workloads and reach their metrics ports.
// Usage: node k8s_manifests_test.cjs SOURCE_DIR TOOLS_DIR KVPOOLD KVPOOL_SCHEDULER
// Exit 77 (ctest SKIP) when the npm tools are missing; 1 on any problem, each one printed.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { createRequire } = require('module');

const [sourceDir, toolsDir, kvpooldBin, schedulerBin] = process.argv.slice(2);
if (!schedulerBin) {
  console.error('usage: k8s_manifests_test.cjs SOURCE_DIR TOOLS_DIR KVPOOLD KVPOOL_SCHEDULER');
  process.exit(2);
}
const toolsRequire = createRequire(path.join(path.resolve(toolsDir), 'package.json'));
let YAML;
try {
  YAML = toolsRequire('yaml');
  toolsRequire.resolve('kubernetes-models/package.json');
  toolsRequire.resolve('@kubernetes-models/prometheus-operator/package.json');
} catch (e) {
  console.log(`SKIP: npm tools missing in ${toolsDir} (run scripts/setup.sh): ${e.message}`);
  process.exit(77);
}

const problems = [];
const problem = (where, what) => problems.push(`${where}: ${what}`);
const manifestDir = path.join(sourceDir, 'deploy', 'kubernetes');

// ---- 1. Schema validation ---------------------------------------------------------------
// The compiled schemas name every property they know as parentDataProperty:"name". A field
// name that no schema knows is a typo. Free-form maps (labels, ConfigMap data, resources) are
// skipped by the key that holds them.
const knownFields = new Set();
for (const pkg of ['kubernetes-models', '@kubernetes-models/apimachinery',
                   '@kubernetes-models/prometheus-operator']) {
  const schemaDir = path.join(path.dirname(toolsRequire.resolve(`${pkg}/package.json`)), '_schemas');
  for (const file of fs.readdirSync(schemaDir).filter((f) => f.endsWith('.js'))) {
    const text = fs.readFileSync(path.join(schemaDir, file), 'utf8');
    for (const m of text.matchAll(/parentDataProperty:"([^"]+)"/g)) knownFields.add(m[1]);
  }
}
const freeFormMaps = new Set(['labels', 'annotations', 'matchLabels', 'data', 'binaryData',
                              'stringData', 'nodeSelector', 'limits', 'requests', 'selector']);
function checkFieldNames(value, where) {
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkFieldNames(item, `${where}[${i}]`));
  } else if (value && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      if (!knownFields.has(key)) problem(where, `unknown field '${key}'`);
      if (!freeFormMaps.has(key)) checkFieldNames(child, `${where}.${key}`);
    }
  }
}

function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : [null, apiVersion];
  const modulePath = group === 'monitoring.coreos.com'
      ? `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`
      : group ? `kubernetes-models/${group}/${version}/${kind}`
              : `kubernetes-models/${version}/${kind}`;
  try {
    return toolsRequire(modulePath)[kind];
  } catch (e) {
    return null;
  }
}

// Every object of the YAML files in `dir` (not its subfolders), validated; its kustomization.
function loadDir(dir, prefix) {
const objects = [];  // {file, doc}
const manifestFiles = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
let kustomization = null;
for (const file of manifestFiles) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(path.join(dir, file), 'utf8'));
  for (const [i, doc] of docs.entries()) {
    const where = `${prefix}${file}#${i}`;
    if (doc.errors.length) {
      problem(where, `YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
      continue;
    }
    const obj = doc.toJS();
    if (!obj) continue;
    if (obj.kind === 'Kustomization') {
      kustomization = { file, obj };
      continue;
    }
    const Model = modelFor(obj.apiVersion || '', obj.kind || '');
    if (!Model) {
      problem(where, `unknown apiVersion/kind '${obj.apiVersion}/${obj.kind}'`);
      continue;
    }
    try {
      new Model(obj).validate();
    } catch (e) {
      problem(`${where} ${obj.kind}/${obj.metadata && obj.metadata.name}`, e.message);
    }
    checkFieldNames(obj, `${where} ${obj.kind}`);
    objects.push({ file, obj });
  }
}
if (objects.length === 0) problem(dir, 'no Kubernetes objects found');

// ---- 2. Kustomization ---------------------------------------------------------------------
if (!kustomization) {
  problem(dir, 'no kustomization.yaml');
} else {
  const listed = new Set(kustomization.obj.resources || []);
  for (const f of listed) {
    if (!fs.existsSync(path.join(dir, f))) problem(prefix + kustomization.file, `lists missing ${f}`);
  }
  for (const f of manifestFiles) {
    if (f !== kustomization.file && !listed.has(f)) problem(prefix + kustomization.file, `does not list ${f}`);
  }
}
return { objects, manifestFiles, kustomization };
}

const base = loadDir(manifestDir, '');
const { objects, manifestFiles, kustomization } = base;
const monitoringDir = path.join(manifestDir, 'monitoring');
const monitoring = loadDir(monitoringDir, 'monitoring/');
if (kustomization && (kustomization.obj.resources || []).some((r) => r.replace(/\/$/, '') === 'monitoring')) {
  problem(kustomization.file, 'lists monitoring/: it needs the ServiceMonitor CRD, keep it optional');
}

// ---- 3. Flags against the real binaries ----------------------------------------------------
function longFlags(binary) {
  const help = execFileSync(binary, ['--help'], { encoding: 'utf8' });
  const flags = new Set();
  for (const m of help.matchAll(/(^|[\s,])--([a-z0-9][a-z0-9-]*)/g)) flags.add(m[2]);
  if (!flags.has('config')) throw new Error(`${binary} --help lists no --config`);
  return flags;
}
const daemons = { kvpoold: longFlags(kvpooldBin), 'kvpool-scheduler': longFlags(schedulerBin) };

function tomlKeys(text) {
  // Uncommented `key = value` lines: the configs are flat, as the daemons read them.
  const keys = [];
  for (const line of text.split('\n')) {
    const m = line.match(/^\s*([A-Za-z0-9_-]+)\s*=/);
    if (m) keys.push(m[1]);
  }
  return keys;
}

const configMaps = new Map();
for (const { obj } of objects) {
  if (obj.kind === 'ConfigMap') configMaps.set(obj.metadata.name, obj);
}
const configFor = { 'kvpoold.toml': 'kvpoold', 'kvpool-scheduler.toml': 'kvpool-scheduler' };
for (const [name, cm] of configMaps) {
  for (const [key, text] of Object.entries(cm.data || {})) {
    const daemon = configFor[key];
    if (!daemon) continue;
    for (const k of tomlKeys(text)) {
      if (!daemons[daemon].has(k)) problem(`ConfigMap/${name} ${key}`, `${daemon} has no --${k}`);
    }
  }
}
for (const daemon of Object.keys(configFor)) {
  if (![...configMaps.values()].some((cm) => cm.data && daemon in cm.data)) {
    problem('ConfigMap', `no ConfigMap holds ${daemon}`);
  }
}

// ---- 4. Cross-checks between objects --------------------------------------------------------
function podSpecs() {
  return objects.filter(({ obj }) => ['Deployment', 'DaemonSet', 'StatefulSet'].includes(obj.kind))
      .map(({ obj }) => ({ obj, spec: obj.spec.template.spec }));
}
function flagValue(args, flag) {
  for (let i = 0; i < args.length; ++i) {
    if (args[i] === `--${flag}`) return args[i + 1];
    if (args[i].startsWith(`--${flag}=`)) return args[i].slice(flag.length + 3);
  }
  return undefined;
}
function parseBytes(text) {
  const m = String(text).match(/^(\d+)\s*(Ki|Mi|Gi|Ti|KiB|MiB|GiB|TiB)?$/);
  if (!m) return NaN;
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 }[(m[2] || '').replace('B', '')];
  return Number(m[1]) * (unit || 1);
}

const seenDaemons = new Set();
for (const { obj, spec } of podSpecs()) {
  const where = `${obj.kind}/${obj.metadata.name}`;
  const annotations = obj.spec.template.metadata.annotations || {};
  if (annotations['prometheus.io/scrape'] !== 'true' || !/^\d+$/.test(annotations['prometheus.io/port'] || '')) {
    problem(where, 'pod template lacks prometheus.io/scrape and prometheus.io/port annotations');
  }
  const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
  for (const c of [...(spec.initContainers || []), ...(spec.containers || [])]) {
    for (const m of c.volumeMounts || []) {
      if (!volumes.has(m.name)) problem(`${where} ${c.name}`, `mounts unknown volume '${m.name}'`);
    }
  }
  for (const v of volumes.values()) {
    if (!v.configMap) continue;
    const cm = configMaps.get(v.configMap.name);
    if (!cm) {
      problem(where, `volume '${v.name}' names missing ConfigMap '${v.configMap.name}'`);
      continue;
    }
    for (const item of v.configMap.items || []) {
      if (!(item.key in (cm.data || {}))) problem(where, `ConfigMap has no key '${item.key}'`);
    }
  }
  for (const c of spec.containers || []) {
    const daemon = (c.command || [])[0];
    if (!(daemon in daemons)) continue;
    seenDaemons.add(daemon);
    const args = c.args || [];
    for (const arg of args) {
      const m = arg.match(/^--([a-z0-9-]+)/);
      if (m && !daemons[daemon].has(m[1])) problem(`${where} ${c.name}`, `${daemon} has no --${m[1]}`);
    }
    const grpcPort = (c.ports || []).find((p) => p.name === 'grpc');
    if (!grpcPort) {
      problem(`${where} ${c.name}`, 'no container port named grpc');
      continue;
    }
    for (const probe of ['readinessProbe', 'livenessProbe']) {
      const p = c[probe];
      if (!p || !p.grpc || p.grpc.port !== grpcPort.containerPort) {
        problem(`${where} ${c.name}`, `${probe} must be a gRPC probe on port ${grpcPort.containerPort}`);
      }
    }
    // The port the daemon listens on: --listen in args, else in its config file.
    const configPath = flagValue(args, 'config');
    const configKey = configPath && path.basename(configPath);
    const configText = [...configMaps.values()].map((cm) => (cm.data || {})[configKey]).find(Boolean);
    let listen = flagValue(args, 'listen');
    if (!listen && configText) {
      const m = configText.match(/^\s*listen\s*=\s*"([^"]*)"/m);
      listen = m && m[1];
    }
    if (!configPath || !configText) problem(`${where} ${c.name}`, `--config names no ConfigMap key`);
    if (!listen || !listen.endsWith(`:${grpcPort.containerPort}`)) {
      problem(`${where} ${c.name}`, `listen '${listen}' is not on port ${grpcPort.containerPort}`);
    }
    // Prometheus scrapes the pod at prometheus.io/port: the daemon must serve metrics there.
    let metrics = flagValue(args, 'metrics-listen');
    if (!metrics && configText) {
      const m = configText.match(/^\s*metrics-listen\s*=\s*"([^"]*)"/m);
      metrics = m && m[1];
    }
    const scrapePort = annotations['prometheus.io/port'];
    if (!metrics || !metrics.endsWith(`:${scrapePort}`)) {
      problem(`${where} ${c.name}`, `metrics-listen '${metrics}' is not on prometheus.io/port ${scrapePort}`);
    } else if (!(c.ports || []).some((p) => p.name === 'metrics' && String(p.containerPort) === scrapePort)) {
      problem(`${where} ${c.name}`, `no container port named metrics on ${scrapePort}`);
    }
    if (daemon === 'kvpoold') {
      if (!spec.hostNetwork) problem(where, 'kvpoold must run on the host network');
      const m = configText && configText.match(/^\s*capacity\s*=\s*"([^"]*)"/m);
      const capacity = m ? parseBytes(m[1]) : NaN;
      const huge = parseBytes(((c.resources || {}).limits || {})['hugepages-2Mi']);
      if (!(capacity > 0) || huge !== capacity) {
        problem(`${where} ${c.name}`, `hugepages-2Mi limit (${huge} bytes) must equal capacity (${capacity} bytes)`);
      }
      const scheduler = flagValue(args, 'scheduler');
      const service = objects.find(({ obj: o }) => o.kind === 'Service' && scheduler &&
          scheduler.startsWith(`${o.metadata.name}.${o.metadata.namespace}.`));
      if (!service) problem(`${where} ${c.name}`, `--scheduler '${scheduler}' names no Service here`);
      else if (!service.obj.spec.ports.some((p) => scheduler.endsWith(`:${p.port}`))) {
        problem(`${where} ${c.name}`, `--scheduler '${scheduler}' is not on a port of the Service`);
      }
    }
  }
}
for (const daemon of Object.keys(daemons)) {
  if (!seenDaemons.has(daemon)) problem(manifestDir, `no workload runs ${daemon}`);
}
for (const { obj } of objects.filter(({ obj: o }) => o.kind === 'Service')) {
  const selector = obj.spec.selector || {};
  const target = podSpecs().find(({ obj: w }) => w.metadata.namespace === obj.metadata.namespace &&
      Object.entries(selector).every(([k, v]) => (w.spec.template.metadata.labels || {})[k] === v));
  if (!target) problem(`Service/${obj.metadata.name}`, 'selector matches no workload');
}

// ---- 5. The Prometheus-operator folder -----------------------------------------------------
const monitors = monitoring.objects.filter(({ obj }) => obj.kind === 'ServiceMonitor');
const metricsServices = monitoring.objects.filter(({ obj }) => obj.kind === 'Service');
if (monitors.length === 0) problem('monitoring/', 'no ServiceMonitor');
const scraped = new Set();
for (const { obj: sm } of monitors) {
  const where = `monitoring/ ServiceMonitor/${sm.metadata.name}`;
  const match = (sm.spec.selector || {}).matchLabels || {};
  const namespaces = ((sm.spec.namespaceSelector || {}).matchNames) || [sm.metadata.namespace];
  const selected = metricsServices.filter(({ obj: svc }) =>
      namespaces.includes(svc.metadata.namespace) &&
      Object.entries(match).every(([k, v]) => (svc.metadata.labels || {})[k] === v));
  if (selected.length === 0) problem(where, 'selects no Service of monitoring/');
  for (const ep of sm.spec.endpoints || []) {
    for (const { obj: svc } of selected) {
      const port = (svc.spec.ports || []).find((p) => p.name === ep.port);
      if (!port) {
        problem(where, `endpoint port '${ep.port}' is not a port of Service/${svc.metadata.name}`);
        continue;
      }
      // The Service must reach the workload's metrics container port, where the daemon serves
      // metrics (section 4 ties that port to metrics-listen and prometheus.io/port).
      const workload = podSpecs().find(({ obj: w }) => w.metadata.namespace === svc.metadata.namespace &&
          Object.entries(svc.spec.selector || {}).every(([k, v]) => (w.spec.template.metadata.labels || {})[k] === v));
      if (!workload) {
        problem(`monitoring/ Service/${svc.metadata.name}`, 'selector matches no workload of the base');
        continue;
      }
      const ann = workload.obj.spec.template.metadata.annotations || {};
      const containerPorts = workload.spec.containers.flatMap((c) => c.ports || []);
      const target = containerPorts.find((p) => p.name === port.targetPort ||
          p.containerPort === port.targetPort);
      if (!target || String(target.containerPort) !== ann['prometheus.io/port']) {
        problem(`monitoring/ Service/${svc.metadata.name}`,
                `targetPort '${port.targetPort}' is not the metrics port ${ann['prometheus.io/port']} of ${workload.obj.kind}/${workload.obj.metadata.name}`);
      }
      if ((ep.path || '/metrics') !== (ann['prometheus.io/path'] || '/metrics')) {
        problem(where, `path '${ep.path}' differs from prometheus.io/path of ${workload.obj.metadata.name}`);
      }
      scraped.add(workload.obj.metadata.name);
    }
  }
}
for (const { obj } of podSpecs()) {
  if (!scraped.has(obj.metadata.name)) problem('monitoring/', `no ServiceMonitor scrapes ${obj.kind}/${obj.metadata.name}`);
}

if (problems.length) {
  for (const p of problems) console.error(`FAIL ${p}`);
  console.error(`${problems.length} problem(s) in ${manifestDir}`);
  process.exit(1);
}
console.log(`${objects.length} Kubernetes objects in ${manifestFiles.length} files valid, ` +
            `${monitoring.objects.length} in monitoring/; ` +
            `flags checked against ${kvpooldBin} and ${schedulerBin}`);
