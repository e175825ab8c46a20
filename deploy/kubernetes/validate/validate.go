package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// The capabilities measured to be enough (docs/deploy.md), in Kubernetes
// spelling. More is a regression in least privilege; less breaks tracing.
var wantCapabilities = []string{"BPF", "PERFMON", "SYSLOG", "SYS_ADMIN", "SYS_PTRACE"}

// Manifest holds the decoded documents of one file, by kind.
type Manifest struct {
	Namespaces      []*corev1.Namespace
	ServiceAccounts []*corev1.ServiceAccount
	DaemonSets      []*appsv1.DaemonSet
	// The web configuration Secrets (web-config-secret.yaml, or a filled-in
	// copy): optional, since the real one is usually created from files.
	Secrets []*corev1.Secret
	// The Prometheus configuration that scrapes the DaemonSet, if given.
	Scrape *ScrapeConfig
}

// Add appends the documents of another file of the same deployment.
func (m *Manifest) Add(o *Manifest) {
	m.Namespaces = append(m.Namespaces, o.Namespaces...)
	m.ServiceAccounts = append(m.ServiceAccounts, o.ServiceAccounts...)
	m.DaemonSets = append(m.DaemonSets, o.DaemonSets...)
	m.Secrets = append(m.Secrets, o.Secrets...)
	if o.Scrape != nil {
		m.Scrape = o.Scrape
	}
}

// Decode splits a multi-document YAML file and decodes each document
// strictly into its API type: an unknown, duplicated or miscased field is an
// error, so a typo cannot silently drop a setting (kubectl apply would only
// warn, and older servers drop it without a word).
func Decode(data []byte) (*Manifest, error) {
	m := &Manifest{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		js, err := yaml.YAMLToJSONStrict(doc) // duplicate keys are errors here
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
			continue // only comments, or an empty document between "---"
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			ns := &corev1.Namespace{}
			m.Namespaces, obj = append(m.Namespaces, ns), ns
		case "v1 ServiceAccount":
			sa := &corev1.ServiceAccount{}
			m.ServiceAccounts, obj = append(m.ServiceAccounts, sa), sa
		case "apps/v1 DaemonSet":
			ds := &appsv1.DaemonSet{}
			m.DaemonSets, obj = append(m.DaemonSets, ds), ds
		case "v1 Secret":
			sec := &corev1.Secret{}
			m.Secrets, obj = append(m.Secrets, sec), sec
		default:
			return nil, fmt.Errorf("document %d: unexpected kind %q (apiVersion %q): only Namespace, ServiceAccount, DaemonSet and Secret belong here",
				n, tm.Kind, tm.APIVersion)
		}
		// Decode as the API server does with strict field validation:
		// field names are case-sensitive (encoding/json would let
		// "hostPid" fill hostPID), unknown and duplicate fields are errors.
		strictErrs, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err == nil {
			err = errors.Join(strictErrs...)
		}
		if err != nil {
			return nil, fmt.Errorf("document %d (%s %s): %w", n, tm.APIVersion, tm.Kind, err)
		}
	}
	return m, nil
}

// Check returns every way the manifest breaks the rules the deployment
// docs promise. An empty result means it is fine.
func Check(m *Manifest) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if len(m.Namespaces) != 1 || len(m.ServiceAccounts) != 1 || len(m.DaemonSets) != 1 {
		bad("want exactly one Namespace, ServiceAccount and DaemonSet, have %d, %d and %d",
			len(m.Namespaces), len(m.ServiceAccounts), len(m.DaemonSets))
		return errs
	}
	ns, sa, ds := m.Namespaces[0], m.ServiceAccounts[0], m.DaemonSets[0]

	for _, o := range []struct {
		kind string
		meta *metav1.ObjectMeta
	}{{"Namespace", &ns.ObjectMeta}, {"ServiceAccount", &sa.ObjectMeta}, {"DaemonSet", &ds.ObjectMeta}} {
		if o.meta.Name == "" {
			bad("%s: metadata.name is empty", o.kind)
		}
		if o.kind != "Namespace" && o.meta.Namespace != ns.Name {
			bad("%s %s: metadata.namespace is %q, not the file's namespace %q", o.kind, o.meta.Name, o.meta.Namespace, ns.Name)
		}
	}
	// hostPID, hostNetwork, hostPath and the added capabilities are all
	// outside the baseline Pod Security level.
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "privileged" {
		bad("Namespace %s: label pod-security.kubernetes.io/enforce is %q, want \"privileged\" (the pod uses host namespaces)", ns.Name, got)
	}

	errs = append(errs, checkDaemonSet(ds, sa)...)
	d := parseDaemonArgs(ds)
	for _, sec := range m.Secrets {
		errs = append(errs, prefix("Secret "+sec.Name+": ", checkWebSecret(sec, ds, d))...)
	}
	if m.Scrape != nil {
		errs = append(errs, prefix("Prometheus config: ", checkScrapeConfig(m.Scrape, ds, m.Secrets, d))...)
	}
	return errs
}

func checkDaemonSet(ds *appsv1.DaemonSet, sa *corev1.ServiceAccount) []error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("DaemonSet %s: "+format, append([]any{ds.Name}, a...)...))
	}
	tpl := &ds.Spec.Template
	pod := &tpl.Spec

	// A selector that does not match the template is rejected by the API
	// server; one that is missing cannot be defaulted for apps/v1.
	if ds.Spec.Selector == nil || len(ds.Spec.Selector.MatchLabels)+len(ds.Spec.Selector.MatchExpressions) == 0 {
		bad("spec.selector is missing or empty")
	} else if sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector); err != nil {
		bad("spec.selector: %v", err)
	} else if !sel.Matches(labels.Set(tpl.Labels)) {
		bad("spec.selector %s does not match the template labels %v", sel, tpl.Labels)
	}

	if pod.ServiceAccountName != sa.Name {
		bad("serviceAccountName is %q, want %q from this file", pod.ServiceAccountName, sa.Name)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		bad("automountServiceAccountToken must be false: the daemon never calls the API server")
	}
	// The BPF iterators see only the namespaces of the reading process.
	if !pod.HostPID {
		bad("hostPID must be true: iter/task_file only walks the pod's own PID namespace otherwise")
	}
	if !pod.HostNetwork {
		bad("hostNetwork must be true: iter/tcp only sees sockets of the pod's own network namespace otherwise")
	} else if pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		bad("dnsPolicy is %q; with hostNetwork use ClusterFirstWithHostNet to keep cluster DNS", pod.DNSPolicy)
	}

	if len(pod.Containers) != 1 {
		bad("want exactly one container, have %d", len(pod.Containers))
		return errs
	}
	c := &pod.Containers[0]
	if c.Image == "" {
		bad("container %s has no image", c.Name)
	}

	d := parseDaemonArgs(ds)
	p := "DaemonSet " + ds.Name + ": "
	errs = append(errs, prefix(p, checkSecurity(pod, c))...)
	errs = append(errs, prefix(p, checkResources(c))...)
	errs = append(errs, prefix(p, checkVolumes(pod, c, d))...)
	errs = append(errs, prefix(p, checkListen(tpl.Annotations, c, d))...)
	errs = append(errs, prefix(p, checkProbes(c, d))...)
	return errs
}

func prefix(p string, errs []error) []error {
	for i, e := range errs {
		errs[i] = errors.New(p + e.Error())
	}
	return errs
}

func checkSecurity(pod *corev1.PodSpec, c *corev1.Container) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	sc := c.SecurityContext
	if sc == nil {
		return []error{errors.New("container has no securityContext")}
	}
	if sc.Privileged != nil && *sc.Privileged {
		bad("privileged must not be true: five capabilities are enough")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		bad("allowPrivilegeEscalation must be false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		bad("readOnlyRootFilesystem must be true: the daemon writes no files in the container")
	}
	if sc.Capabilities == nil {
		bad("capabilities must drop ALL and add %v", wantCapabilities)
	} else {
		if !slices.ContainsFunc(sc.Capabilities.Drop, func(c corev1.Capability) bool { return strings.EqualFold(string(c), "ALL") }) {
			bad("capabilities.drop must contain ALL")
		}
		var add []string
		for _, a := range sc.Capabilities.Add {
			add = append(add, strings.TrimPrefix(strings.ToUpper(string(a)), "CAP_"))
		}
		slices.Sort(add)
		if !slices.Equal(add, wantCapabilities) {
			bad("capabilities.add is %v, want exactly %v", add, wantCapabilities)
		}
	}

	// Added capabilities survive execve only for uid 0: Kubernetes sets no
	// ambient capabilities.
	uid, nonRoot := int64(0), false
	if ps := pod.SecurityContext; ps != nil {
		if ps.RunAsUser != nil {
			uid = *ps.RunAsUser
		}
		if ps.RunAsNonRoot != nil {
			nonRoot = *ps.RunAsNonRoot
		}
	}
	if sc.RunAsUser != nil {
		uid = *sc.RunAsUser
	}
	if sc.RunAsNonRoot != nil {
		nonRoot = *sc.RunAsNonRoot
	}
	if uid != 0 || nonRoot {
		bad("runs as uid %d (runAsNonRoot %v): a non-root uid loses the added capabilities at execve", uid, nonRoot)
	}
	return errs
}

func checkResources(c *corev1.Container) []error {
	var errs []error
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[name]
		lim, hasLim := c.Resources.Limits[name]
		switch {
		case !hasReq:
			errs = append(errs, fmt.Errorf("resources.requests.%s is missing", name))
		case !hasLim:
			errs = append(errs, fmt.Errorf("resources.limits.%s is missing", name))
		case req.Cmp(lim) > 0:
			errs = append(errs, fmt.Errorf("resources.requests.%s (%s) is above the limit (%s)", name, req.String(), lim.String()))
		}
	}
	// BPF maps and the ring buffer are charged to the container's cgroup
	// on top of the Go heap; below this the daemon is OOM-killed at start.
	if lim, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && lim.Cmp(resource.MustParse("128Mi")) < 0 {
		errs = append(errs, fmt.Errorf("resources.limits.memory %s is too small for the BPF maps and ring buffer (>= 128Mi)", lim.String()))
	}
	return errs
}

// The daemon's flags this file cares about, as the container passes them.
type daemonArgs struct {
	listen      string // "" when not given (the default is loopback)
	webConfig   string
	listenAPI   bool
	allowUnauth bool
	apiSocket   string // the default when not given; "off" disables it
	errs        []error
}

// defaultSocket is the daemon's --api-socket default, where the CLI looks.
const defaultSocket = "/run/tcpstated/api.sock"

func parseDaemonArgs(ds *appsv1.DaemonSet) daemonArgs {
	var d daemonArgs
	if cs := ds.Spec.Template.Spec.Containers; len(cs) > 0 {
		// A flag in command counts as much as one in args.
		args := slices.Concat(cs[0].Command, cs[0].Args)
		d.listen, _ = flagValue(args, "listen")
		d.webConfig, _ = flagValue(args, "web.config.file")
		var err error
		if d.listenAPI, err = flagBool(args, "listen-api"); err != nil {
			d.errs = append(d.errs, err)
		}
		if d.allowUnauth, err = flagBool(args, "allow-unauthenticated-listen"); err != nil {
			d.errs = append(d.errs, err)
		}
		var ok bool
		if d.apiSocket, ok = flagValue(args, "api-socket"); !ok {
			d.apiSocket = defaultSocket
		}
	}
	return d
}

// mountFor finds the container's mount of dir and its volume.
func mountFor(pod *corev1.PodSpec, c *corev1.Container, dir string) (*corev1.VolumeMount, *corev1.Volume) {
	for i := range c.VolumeMounts {
		vm := &c.VolumeMounts[i]
		if path.Clean(vm.MountPath) != dir {
			continue
		}
		for j := range pod.Volumes {
			if pod.Volumes[j].Name == vm.Name {
				return vm, &pod.Volumes[j]
			}
		}
		return vm, nil
	}
	return nil, nil
}

// webSecretName is the Secret mounted as --web.config.file's directory, or "".
func webSecretName(ds *appsv1.DaemonSet, d daemonArgs) string {
	pod := &ds.Spec.Template.Spec
	if d.webConfig == "" || len(pod.Containers) == 0 {
		return ""
	}
	if _, v := mountFor(pod, &pod.Containers[0], path.Dir(d.webConfig)); v != nil && v.Secret != nil {
		return v.Secret.SecretName
	}
	return ""
}

func checkVolumes(pod *corev1.PodSpec, c *corev1.Container, d daemonArgs) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	vols := map[string]*corev1.Volume{}
	for i := range pod.Volumes {
		vols[pod.Volumes[i].Name] = &pod.Volumes[i]
	}
	sockDir := ""
	if d.apiSocket != "off" && d.apiSocket != "" {
		sockDir = path.Dir(d.apiSocket)
	}
	btf := false
	for _, vm := range c.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok {
			bad("volumeMount %s refers to no volume", vm.Name)
			continue
		}
		// The API socket's directory is the one writable host directory:
		// the daemon creates its socket there.
		if v.HostPath != nil && !vm.ReadOnly && (sockDir == "" || path.Clean(vm.MountPath) != sockDir) {
			bad("hostPath volume %s (%s) must be mounted readOnly (only the --api-socket directory %s may be writable)", vm.Name, v.HostPath.Path, sockDir)
		}
		if v.HostPath != nil && v.HostPath.Path == "/sys/kernel/btf" && vm.MountPath == "/sys/kernel/btf" && vm.ReadOnly {
			btf = true
		}
	}
	if !btf {
		bad("the host's /sys/kernel/btf must be mounted read-only at /sys/kernel/btf (CO-RE relocation)")
	}

	// The API socket: the probes ask it, and the node's root reaches it
	// through the same host directory.
	switch {
	case sockDir == "":
		bad("--api-socket is off: the exec probes and the node's operators use it")
	case !path.IsAbs(d.apiSocket):
		bad("--api-socket %q is not an absolute path", d.apiSocket)
	default:
		vm, v := mountFor(pod, c, sockDir)
		switch {
		case vm == nil || v == nil:
			bad("the --api-socket directory %s is not mounted: mount the host's %s there (hostPath, DirectoryOrCreate) so that the daemon can create the socket and the node's root can use it", sockDir, sockDir)
		case v.HostPath == nil:
			bad("volume %s at the --api-socket directory %s is not a hostPath: the node's operators could not reach the socket", v.Name, sockDir)
		case vm.ReadOnly:
			bad("volume %s at the --api-socket directory %s is readOnly: the daemon cannot create its socket", v.Name, sockDir)
		case vm.SubPath != "" || vm.SubPathExpr != "":
			bad("volume %s at the --api-socket directory %s uses subPath: mount the host directory itself", v.Name, sockDir)
		case !strings.HasPrefix(path.Clean(v.HostPath.Path)+"/", "/run/") && !strings.HasPrefix(path.Clean(v.HostPath.Path)+"/", "/var/run/"):
			bad("hostPath %s for the API socket is not under /run: a writable host directory belongs there", v.HostPath.Path)
		}
	}

	// The web configuration and its certificate and key: a Secret, read-only.
	if d.webConfig != "" {
		dir := path.Dir(d.webConfig)
		vm, v := mountFor(pod, c, dir)
		switch {
		case !path.IsAbs(d.webConfig):
			bad("--web.config.file %q is not an absolute path", d.webConfig)
		case vm == nil || v == nil:
			bad("--web.config.file %s: no volume is mounted at %s: mount the web config Secret there (web-config-secret.yaml)", d.webConfig, dir)
		case v.Secret == nil:
			bad("--web.config.file %s: volume %s at %s is not a Secret: the TLS key and password hashes belong in one", d.webConfig, v.Name, dir)
		case !vm.ReadOnly:
			bad("--web.config.file %s: the Secret volume %s must be mounted readOnly", d.webConfig, v.Name)
		case vm.SubPath != "" || vm.SubPathExpr != "":
			bad("--web.config.file %s: volume %s uses subPath, which never sees the Secret's updates (a renewed certificate)", d.webConfig, v.Name)
		default:
			if v.Secret.SecretName == "" {
				bad("volume %s has no secretName", v.Name)
			}
			if v.Secret.Optional != nil && *v.Secret.Optional {
				bad("volume %s: the web config Secret must not be optional (without it the daemon refuses to start, which a missing Secret should say instead)", v.Name)
			}
			if m := v.Secret.DefaultMode; m != nil && *m&0o007 != 0 {
				bad("volume %s: defaultMode %#o lets every user in the container read the TLS key (use 0400)", v.Name, *m)
			}
			if len(v.Secret.Items) > 0 && !slices.ContainsFunc(v.Secret.Items, func(k corev1.KeyToPath) bool { return k.Path == path.Base(d.webConfig) }) {
				bad("volume %s: items leave out %s", v.Name, path.Base(d.webConfig))
			}
		}
	}
	return errs
}

// checkListen ties the --listen flag to the metrics port and holds the
// network listener to metrics and health behind TLS and authentication.
func checkListen(ann map[string]string, c *corev1.Container, d daemonArgs) []error {
	errs := append([]error(nil), d.errs...)
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	metrics, ok := int32(0), false
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			metrics, ok = p.ContainerPort, true
		}
	}
	if !ok {
		bad("container has no port named metrics")
	}

	switch host, port, err := net.SplitHostPort(d.listen); {
	case d.listen == "":
		bad("args have no --listen: the default 127.0.0.1 cannot be scraped from outside the node")
	case err != nil:
		bad("--listen %q: %v", d.listen, err)
	default:
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			bad("--listen %s is loopback: Prometheus could not reach it", d.listen)
		} else if d.webConfig == "" {
			bad("--listen %s reaches beyond loopback without --web.config.file: it needs TLS and authentication (the daemon refuses to start without them)", d.listen)
		}
		if ok && port != strconv.Itoa(int(metrics)) {
			bad("--listen port %s differs from the metrics containerPort %d", port, metrics)
		}
	}
	if d.allowUnauth {
		bad("--allow-unauthenticated-listen serves the listener to anyone who can reach the node: give --web.config.file TLS and authentication instead")
	}
	if d.listenAPI {
		bad("--listen-api puts every socket, process and peer of the node on the network: the network gets metrics only; the API stays on --api-socket")
	}
	// The usual annotation-based jobs send no credentials: every node would
	// be a failing target. deploy/prometheus/scrape-config.yml has the job.
	if ann["prometheus.io/scrape"] == "true" && d.webConfig != "" {
		bad(`pod annotation prometheus.io/scrape is "true", but annotation-based scrape jobs have no credentials for the authenticated listener: use a job like deploy/prometheus/scrape-config.yml`)
	}
	return errs
}

// checkProbes wants both probes to be `tcpstated health` over the API
// socket: no credentials in the pod spec, nothing opened to the network.
func checkProbes(c *corev1.Container, d daemonArgs) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, pr := range []struct {
		name     string
		probe    *corev1.Probe
		required bool
	}{{"readinessProbe", c.ReadinessProbe, true}, {"livenessProbe", c.LivenessProbe, true}, {"startupProbe", c.StartupProbe, false}} {
		p := pr.probe
		switch {
		case p == nil:
			if pr.required {
				bad("%s is missing: use exec [/tcpstated, health]", pr.name)
			}
			continue
		case p.HTTPGet != nil:
			bad("%s is an httpGet of port %s: the network listener needs authentication, so it would get 401, and credentials in httpHeaders would sit in the pod spec; use exec [/tcpstated, health], which asks the API socket", pr.name, p.HTTPGet.Port.String())
			continue
		case p.Exec == nil:
			bad("%s must be exec [/tcpstated, health] (over the API socket)", pr.name)
			continue
		}
		cmd := p.Exec.Command
		if len(cmd) < 2 || path.Base(cmd[0]) != "tcpstated" || cmd[1] != "health" {
			bad("%s command is %q, want [/tcpstated, health]", pr.name, cmd)
			continue
		}
		addr, given := flagValue(cmd[2:], "addr")
		switch {
		case !given && d.apiSocket != defaultSocket:
			bad("%s asks the default socket %s, but the daemon listens on --api-socket %s: add --addr=%s", pr.name, defaultSocket, d.apiSocket, d.apiSocket)
		case given && !strings.HasPrefix(addr, "/"):
			bad("%s --addr %s is a network address: probe over the API socket (%s), which needs no credentials", pr.name, addr, d.apiSocket)
		case given && path.Clean(addr) != path.Clean(d.apiSocket):
			bad("%s --addr %s is not the daemon's --api-socket %s", pr.name, addr, d.apiSocket)
		}
		for _, f := range []string{"password-file", "username", "cert-file", "key-file"} {
			if _, ok := flagValue(cmd[2:], f); ok {
				bad("%s passes --%s: over the API socket the probe needs no credentials", pr.name, f)
			}
		}
	}
	return errs
}

// flagValue finds a Go-style flag in args: -name=v, --name=v, or the value
// in the following argument. The last one counts, as with the flag package.
func flagValue(args []string, name string) (value string, found bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		trimmed := strings.TrimLeft(a, "-")
		if trimmed == a || len(a)-len(trimmed) > 2 {
			continue
		}
		if v, ok := strings.CutPrefix(trimmed, name+"="); ok {
			value, found = v, true
		} else if trimmed == name && i+1 < len(args) {
			value, found = args[i+1], true
			i++
		}
	}
	return value, found
}

// flagBool reads a Go-style boolean flag: -name or --name (true), or
// --name=VALUE. The last one counts.
func flagBool(args []string, name string) (bool, error) {
	set := false
	for _, a := range args {
		if a == "--" {
			break
		}
		trimmed := strings.TrimLeft(a, "-")
		if trimmed == a || len(a)-len(trimmed) > 2 {
			continue
		}
		if trimmed == name {
			set = true
		} else if v, ok := strings.CutPrefix(trimmed, name+"="); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return false, fmt.Errorf("--%s=%s: not a boolean", name, v)
			}
			set = b
		}
	}
	return set, nil
}

// Summary names what a valid manifest holds.
func (m *Manifest) Summary() string {
	s := fmt.Sprintf("Namespace %s, ServiceAccount %s, DaemonSet %s", m.Namespaces[0].Name, m.ServiceAccounts[0].Name, m.DaemonSets[0].Name)
	for _, sec := range m.Secrets {
		s += ", Secret " + sec.Name
	}
	if m.Scrape != nil {
		s += ", Prometheus scrape config"
	}
	return s
}
