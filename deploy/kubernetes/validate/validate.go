package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
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
		default:
			return nil, fmt.Errorf("document %d: unexpected kind %q (apiVersion %q): only Namespace, ServiceAccount and DaemonSet belong here",
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

	errs = append(errs, prefix("DaemonSet "+ds.Name+": ", checkSecurity(pod, c))...)
	errs = append(errs, prefix("DaemonSet "+ds.Name+": ", checkResources(c))...)
	errs = append(errs, prefix("DaemonSet "+ds.Name+": ", checkVolumes(pod, c))...)
	errs = append(errs, prefix("DaemonSet "+ds.Name+": ", checkScrape(tpl.Annotations, c))...)
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

func checkVolumes(pod *corev1.PodSpec, c *corev1.Container) []error {
	var errs []error
	vols := map[string]*corev1.Volume{}
	for i := range pod.Volumes {
		vols[pod.Volumes[i].Name] = &pod.Volumes[i]
	}
	btf := false
	for _, vm := range c.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("volumeMount %s refers to no volume", vm.Name))
			continue
		}
		if v.HostPath != nil && !vm.ReadOnly {
			errs = append(errs, fmt.Errorf("hostPath volume %s (%s) must be mounted readOnly", vm.Name, v.HostPath.Path))
		}
		if v.HostPath != nil && v.HostPath.Path == "/sys/kernel/btf" && vm.MountPath == "/sys/kernel/btf" && vm.ReadOnly {
			btf = true
		}
	}
	if !btf {
		errs = append(errs, errors.New("the host's /sys/kernel/btf must be mounted read-only at /sys/kernel/btf (CO-RE relocation)"))
	}
	return errs
}

// checkScrape ties the Prometheus annotations, the container port, the
// probes and the --listen flag to one port, reachable from outside the node.
func checkScrape(ann map[string]string, c *corev1.Container) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if ann["prometheus.io/scrape"] != "true" {
		bad(`pod annotation prometheus.io/scrape must be "true"`)
	}
	annPort, err := strconv.Atoi(ann["prometheus.io/port"])
	if err != nil {
		bad("pod annotation prometheus.io/port %q is not a port number", ann["prometheus.io/port"])
	}

	portByName := map[string]int32{}
	for _, p := range c.Ports {
		if p.Name != "" {
			portByName[p.Name] = p.ContainerPort
		}
	}
	metrics, ok := portByName["metrics"]
	if !ok {
		bad("container has no port named metrics")
	} else if annPort != 0 && int(metrics) != annPort {
		bad("prometheus.io/port %d differs from the metrics containerPort %d", annPort, metrics)
	}

	listen, found := flagValue(c.Args, "listen")
	if !found {
		bad("args have no --listen: the default 127.0.0.1 cannot be scraped from outside the node")
	} else if host, port, err := net.SplitHostPort(listen); err != nil {
		bad("--listen %q: %v", listen, err)
	} else {
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			bad("--listen %s is loopback: Prometheus and the kubelet's probes could not reach it", listen)
		}
		if ok && port != strconv.Itoa(int(metrics)) {
			bad("--listen port %s differs from the metrics containerPort %d", port, metrics)
		}
	}

	for _, pr := range []struct {
		name  string
		probe *corev1.Probe
	}{{"readinessProbe", c.ReadinessProbe}, {"livenessProbe", c.LivenessProbe}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			bad("%s must be an httpGet of /healthz", pr.name)
			continue
		}
		if pr.probe.HTTPGet.Path != "/healthz" {
			bad("%s path is %q, want /healthz", pr.name, pr.probe.HTTPGet.Path)
		}
		if p := pr.probe.HTTPGet.Port; !(p.Type == intstr.String && p.StrVal == "metrics") && !(p.Type == intstr.Int && p.IntVal == metrics) {
			bad("%s port %s is not the metrics port", pr.name, p.String())
		}
	}
	return errs
}

// flagValue finds a Go-style flag in args: -name=v, --name=v, or the value
// in the following argument.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		trimmed := strings.TrimLeft(a, "-")
		if trimmed == a || len(a)-len(trimmed) > 2 {
			continue
		}
		if v, ok := strings.CutPrefix(trimmed, name+"="); ok {
			return v, true
		}
		if trimmed == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}
