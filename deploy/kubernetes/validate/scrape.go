package main

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// ScrapeConfig is the part of a Prometheus configuration this checks.
// promtool checks the syntax (scripts/validate-deploy.sh); this checks that
// a job scrapes the DaemonSet's pods, only them, the way its listener wants.
type ScrapeConfig struct {
	ScrapeConfigs []ScrapeJob `json:"scrape_configs"`
}

type ScrapeJob struct {
	JobName     string `json:"job_name"`
	Scheme      string `json:"scheme"`
	MetricsPath string `json:"metrics_path"`
	TLSConfig   struct {
		CAFile             string `json:"ca_file"`
		CA                 string `json:"ca"`
		CertFile           string `json:"cert_file"`
		KeyFile            string `json:"key_file"`
		ServerName         string `json:"server_name"`
		InsecureSkipVerify bool   `json:"insecure_skip_verify"`
	} `json:"tls_config"`
	BasicAuth *struct {
		Username     string `json:"username"`
		UsernameFile string `json:"username_file"`
		Password     string `json:"password"`
		PasswordFile string `json:"password_file"`
	} `json:"basic_auth"`
	KubernetesSD []struct {
		Role       string `json:"role"`
		Namespaces *struct {
			Names []string `json:"names"`
		} `json:"namespaces"`
		Selectors []struct {
			Role  string `json:"role"`
			Label string `json:"label"`
			Field string `json:"field"`
		} `json:"selectors"`
	} `json:"kubernetes_sd_configs"`
	RelabelConfigs []Relabel `json:"relabel_configs"`
}

// Relabel is one relabel_configs entry, with Prometheus' defaults.
type Relabel struct {
	SourceLabels []string `json:"source_labels"`
	Separator    *string  `json:"separator"`
	Regex        *string  `json:"regex"`
	Modulus      uint64   `json:"modulus"`
	TargetLabel  string   `json:"target_label"`
	Replacement  *string  `json:"replacement"`
	Action       string   `json:"action"`
}

// ReadScrapeConfig reads a Prometheus configuration file.
func ReadScrapeConfig(file string) (*ScrapeConfig, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	c, err := ParseScrapeConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

// ParseScrapeConfig decodes a Prometheus configuration, leniently: promtool
// is what rejects unknown fields.
func ParseScrapeConfig(b []byte) (*ScrapeConfig, error) {
	c := &ScrapeConfig{}
	if err := yaml.Unmarshal(b, c); err != nil {
		return nil, err
	}
	return c, nil
}

// podTarget is what kubernetes_sd_configs role pod makes of the
// DaemonSet's pod for one container port, before relabelling.
func podTarget(ds *appsv1.DaemonSet, namespace string, podLabels map[string]string, port corev1.ContainerPort) map[string]string {
	pod := &ds.Spec.Template.Spec
	t := map[string]string{
		"__address__":                                   "192.0.2.1:" + strconv.Itoa(int(port.ContainerPort)),
		"__scheme__":                                    "http",
		"__metrics_path__":                              "/metrics",
		"__meta_kubernetes_namespace":                   namespace,
		"__meta_kubernetes_pod_name":                    ds.Name + "-x7k2p",
		"__meta_kubernetes_pod_ip":                      "192.0.2.1",
		"__meta_kubernetes_pod_host_ip":                 "192.0.2.1",
		"__meta_kubernetes_pod_node_name":               "node-1",
		"__meta_kubernetes_pod_ready":                   "true",
		"__meta_kubernetes_pod_phase":                   "Running",
		"__meta_kubernetes_pod_controller_kind":         "DaemonSet",
		"__meta_kubernetes_pod_controller_name":         ds.Name,
		"__meta_kubernetes_pod_container_name":          pod.Containers[0].Name,
		"__meta_kubernetes_pod_container_port_name":     port.Name,
		"__meta_kubernetes_pod_container_port_number":   strconv.Itoa(int(port.ContainerPort)),
		"__meta_kubernetes_pod_container_port_protocol": string(port.Protocol),
	}
	for k, v := range podLabels {
		t["__meta_kubernetes_pod_label_"+labelName(k)] = v
		t["__meta_kubernetes_pod_labelpresent_"+labelName(k)] = "true"
	}
	for k, v := range ds.Spec.Template.Annotations {
		t["__meta_kubernetes_pod_annotation_"+labelName(k)] = v
		t["__meta_kubernetes_pod_annotationpresent_"+labelName(k)] = "true"
	}
	return t
}

var invalidLabelChar = regexp.MustCompile(`[^a-zA-Z0-9_]`)

func labelName(s string) string { return invalidLabelChar.ReplaceAllString(s, "_") }

// discovers says whether the job's Kubernetes discovery finds a pod in
// namespace with these labels (role pod; label selectors are applied, field
// selectors are not).
func (j *ScrapeJob) discovers(namespace string, podLabels map[string]string) (bool, error) {
	for _, sd := range j.KubernetesSD {
		if sd.Role != "pod" {
			continue
		}
		if sd.Namespaces != nil && len(sd.Namespaces.Names) > 0 && !slices.Contains(sd.Namespaces.Names, namespace) {
			continue
		}
		ok := true
		for _, s := range sd.Selectors {
			if s.Role != "pod" || s.Label == "" {
				continue
			}
			sel, err := labels.Parse(s.Label)
			if err != nil {
				return false, fmt.Errorf("job %s: selector %q: %v", j.JobName, s.Label, err)
			}
			ok = ok && sel.Matches(labels.Set(podLabels))
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// relabel applies the job's relabel_configs as Prometheus does; nil means
// the target was dropped.
func (j *ScrapeJob) relabel(t map[string]string) (map[string]string, error) {
	lb := map[string]string{}
	for k, v := range t {
		lb[k] = v
	}
	for i, r := range j.RelabelConfigs {
		sep, re, repl := ";", "(.*)", "$1"
		if r.Separator != nil {
			sep = *r.Separator
		}
		if r.Regex != nil {
			re = *r.Regex
		}
		if r.Replacement != nil {
			repl = *r.Replacement
		}
		rx, err := regexp.Compile("^(?s:" + re + ")$")
		if err != nil {
			return nil, fmt.Errorf("job %s: relabel_configs[%d]: regex %q: %v", j.JobName, i, re, err)
		}
		vals := make([]string, len(r.SourceLabels))
		for k, l := range r.SourceLabels {
			vals[k] = lb[l]
		}
		val := strings.Join(vals, sep)
		action := strings.ToLower(r.Action)
		switch action {
		case "", "replace":
			m := rx.FindStringSubmatchIndex(val)
			if m == nil {
				break
			}
			target := string(rx.ExpandString(nil, r.TargetLabel, val, m))
			res := string(rx.ExpandString(nil, repl, val, m))
			if res == "" {
				delete(lb, target)
			} else {
				lb[target] = res
			}
		case "keep":
			if !rx.MatchString(val) {
				return nil, nil
			}
		case "drop":
			if rx.MatchString(val) {
				return nil, nil
			}
		case "keepequal":
			if val != lb[r.TargetLabel] {
				return nil, nil
			}
		case "dropequal":
			if val == lb[r.TargetLabel] {
				return nil, nil
			}
		case "lowercase":
			lb[r.TargetLabel] = strings.ToLower(val)
		case "uppercase":
			lb[r.TargetLabel] = strings.ToUpper(val)
		case "hashmod":
			if r.Modulus == 0 {
				return nil, fmt.Errorf("job %s: relabel_configs[%d]: hashmod without modulus", j.JobName, i)
			}
			sum := md5.Sum([]byte(val))
			lb[r.TargetLabel] = strconv.FormatUint(binary.BigEndian.Uint64(sum[8:])%r.Modulus, 10)
		case "labelmap":
			for k, v := range copyLabels(lb) {
				if rx.MatchString(k) {
					lb[rx.ReplaceAllString(k, repl)] = v
				}
			}
		case "labeldrop", "labelkeep":
			for k := range copyLabels(lb) {
				if rx.MatchString(k) == (action == "labeldrop") {
					delete(lb, k)
				}
			}
		default:
			return nil, fmt.Errorf("job %s: relabel_configs[%d]: unknown action %q", j.JobName, i, r.Action)
		}
	}
	return lb, nil
}

func copyLabels(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// scrapes says whether the job ends up scraping the pod's port, and the
// target's labels if it does.
func (j *ScrapeJob) scrapes(ds *appsv1.DaemonSet, namespace string, podLabels map[string]string, port corev1.ContainerPort) (map[string]string, error) {
	if ok, err := j.discovers(namespace, podLabels); !ok || err != nil {
		return nil, err
	}
	return j.relabel(podTarget(ds, namespace, podLabels, port))
}

// checkScrapeConfig wants a job that scrapes the DaemonSet's metrics port,
// over verified TLS with credentials the web config accepts, and that sends
// them to no other pod and no other port.
func checkScrapeConfig(sc *ScrapeConfig, ds *appsv1.DaemonSet, secrets []*corev1.Secret, d daemonArgs) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	pod := &ds.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		return nil // reported with the DaemonSet
	}
	var metrics *corev1.ContainerPort
	for i, p := range pod.Containers[0].Ports {
		if p.Name == "metrics" {
			metrics = &pod.Containers[0].Ports[i]
		}
	}
	if metrics == nil {
		return nil // reported with the DaemonSet
	}

	// What the listener accepts: from the Secret when it is given, else
	// what the daemon insists on beyond loopback (TLS and some auth).
	sec := webSecurity{TLS: true, Auth: true}
	secretGiven := false
	for _, s := range secrets {
		if s.Name == webSecretName(ds, d) {
			if _, _, ws, err := webSecretConfig(s, d); err == nil {
				sec, secretGiven = ws, true
			}
		}
	}

	other := map[string]string{}
	for k, v := range ds.Spec.Template.Labels {
		other[k] = v
	}
	other["app.kubernetes.io/name"] = "some-other-app"
	otherPort := *metrics
	otherPort.Name, otherPort.ContainerPort = "http", 8080

	found := false
	for i := range sc.ScrapeConfigs {
		j := &sc.ScrapeConfigs[i]
		lb, err := j.scrapes(ds, ds.Namespace, ds.Spec.Template.Labels, *metrics)
		if err != nil {
			bad("%v", err)
			continue
		}
		if lb == nil {
			continue
		}
		found = true
		p := "job " + j.JobName + ": "
		if want := ":" + strconv.Itoa(int(metrics.ContainerPort)); !strings.HasSuffix(lb["__address__"], want) {
			bad(p+"scrapes %s, not the metrics port %d", lb["__address__"], metrics.ContainerPort)
		}
		if mp := j.MetricsPath; mp != "" && mp != "/metrics" {
			bad(p+"metrics_path %s: the daemon serves /metrics", mp)
		}
		if sec.TLS {
			if j.Scheme != "https" {
				bad(p+"scheme is %q: the listener serves TLS, want https", j.Scheme)
			}
			if j.TLSConfig.InsecureSkipVerify {
				bad("%stls_config.insecure_skip_verify: the credentials would go to whoever answers at the node's address", p)
			}
			if j.TLSConfig.CAFile == "" && j.TLSConfig.CA == "" {
				bad("%stls_config has no ca_file: name the CA that signed the daemon's certificate", p)
			}
			if j.TLSConfig.ServerName == "" {
				bad("%stls_config has no server_name: the targets are node IPs, which one shared certificate does not name", p)
			}
		}
		ba := j.BasicAuth
		clientCert := j.TLSConfig.CertFile != "" && j.TLSConfig.KeyFile != ""
		switch {
		case ba == nil && !(sec.ClientCerts && clientCert):
			bad("%shas no basic_auth: the listener requires authentication", p)
		case ba != nil && ba.Password != "":
			bad("%sbasic_auth.password is inline: use password_file (a mounted Secret)", p)
		case ba != nil && ba.PasswordFile == "":
			bad("%sbasic_auth has no password_file", p)
		case ba != nil && secretGiven && ba.UsernameFile == "" && !slices.Contains(sec.Users, ba.Username):
			bad(p+"basic_auth.username %q is not one of the web config's basic_auth_users %v", ba.Username, sec.Users)
		}

		// The credentials go to the DaemonSet's metrics port and nowhere else.
		if lb, err := j.scrapes(ds, ds.Namespace, other, *metrics); err == nil && lb != nil {
			bad(p+"also scrapes pods labelled app.kubernetes.io/name=%s: keep only the DaemonSet's pods (its labels %v), so the credentials go nowhere else", other["app.kubernetes.io/name"], ds.Spec.Template.Labels)
		}
		if lb, err := j.scrapes(ds, "some-other-namespace", ds.Spec.Template.Labels, *metrics); err == nil && lb != nil {
			bad(p+"also scrapes pods with the DaemonSet's labels in other namespaces: restrict kubernetes_sd_configs namespaces to %s", ds.Namespace)
		}
		if lb, err := j.scrapes(ds, ds.Namespace, ds.Spec.Template.Labels, otherPort); err == nil && lb != nil {
			bad(p+"also scrapes container ports other than %s: keep __meta_kubernetes_pod_container_port_name %s", metrics.Name, metrics.Name)
		}
	}
	if !found {
		bad("no job scrapes the DaemonSet's pods (kubernetes_sd_configs role pod in namespace %s, labels %v, port %s)",
			ds.Namespace, ds.Spec.Template.Labels, metrics.Name)
	}
	return errs
}
