package main

import (
	"os"
	"strings"
	"testing"
)

const (
	manifestPath = "../daemonset.yaml"
	secretPath   = "../web-config-secret.yaml"
	scrapePath   = "../../prometheus/scrape-config.yml"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readManifest(t *testing.T) string { return readFile(t, manifestPath) }

// check decodes and checks the three files as one deployment; scrape ""
// leaves the Prometheus configuration out.
func check(t *testing.T, manifest, secret, scrape string) []string {
	t.Helper()
	m, err := Decode([]byte(manifest))
	if err != nil {
		return []string{err.Error()}
	}
	if secret != "" {
		sm, err := Decode([]byte(secret))
		if err != nil {
			return []string{err.Error()}
		}
		m.Add(sm)
	}
	if scrape != "" {
		if m.Scrape, err = ParseScrapeConfig([]byte(scrape)); err != nil {
			return []string{err.Error()}
		}
	}
	var msgs []string
	for _, e := range Check(m) {
		msgs = append(msgs, e.Error())
	}
	return msgs
}

func TestShippedManifestIsValid(t *testing.T) {
	for _, e := range check(t, readManifest(t), "", "") {
		t.Error(e)
	}
}

func TestShippedDeploymentIsValid(t *testing.T) {
	for _, e := range check(t, readManifest(t), readFile(t, secretPath), readFile(t, scrapePath)) {
		t.Error(e)
	}
}

// Each case breaks the shipped manifest in one way and names a word the
// error must contain. The edit must apply: a case whose text no longer
// occurs in the manifest fails instead of passing vacuously.
func TestBrokenManifestsAreRejected(t *testing.T) {
	const (
		ds     = "daemonset.yaml"
		secret = "web-config-secret.yaml"
		scrape = "scrape-config.yml"
	)
	cases := []struct {
		name      string
		file      string
		old, new  string
		wantInErr string
	}{
		{"unknown field", ds, "      hostPID: true\n", "      hostPID: true\n      hostPIDs: true\n", `unknown field "spec.template.spec.hostPIDs"`},
		{"miscased field", ds, "      hostPID: true\n", "      hostPid: true\n", `unknown field "spec.template.spec.hostPid"`},
		{"unknown nested field", ds, "            readOnlyRootFilesystem: true\n", "            readOnlyRootFilesystem: true\n            readOnlyRootFS: true\n", "readOnlyRootFS"},
		{"duplicate field", ds, "      hostPID: true\n", "      hostPID: true\n      hostPID: true\n", "already set"},
		{"wrong type", ds, "      hostPID: true\n", "      hostPID: \"yes\"\n", "hostPID"},
		{"unknown kind", ds, "kind: ServiceAccount\n", "kind: ServiceAcount\n", "unexpected kind"},
		{"no hostPID", ds, "      hostPID: true\n", "      hostPID: false\n", "hostPID must be true"},
		{"no hostNetwork", ds, "      hostNetwork: true\n", "      hostNetwork: false\n", "hostNetwork must be true"},
		{"dns policy", ds, "      dnsPolicy: ClusterFirstWithHostNet\n", "      dnsPolicy: ClusterFirst\n", "ClusterFirstWithHostNet"},
		{"extra capability", ds, "                - SYS_ADMIN\n", "                - SYS_ADMIN\n                - NET_ADMIN\n", "want exactly"},
		{"missing capability", ds, "                - PERFMON\n", "", "want exactly"},
		{"no drop all", ds, "                - ALL\n", "                - NET_RAW\n", "drop must contain ALL"},
		{"privileged", ds, "            privileged: false\n", "            privileged: true\n", "privileged must not be true"},
		{"escalation", ds, "            allowPrivilegeEscalation: false\n", "            allowPrivilegeEscalation: true\n", "allowPrivilegeEscalation"},
		{"writable root", ds, "            readOnlyRootFilesystem: true\n", "            readOnlyRootFilesystem: false\n", "readOnlyRootFilesystem"},
		{"non-root uid", ds, "        runAsUser: 0\n", "        runAsUser: 65534\n", "loses the added capabilities"},
		{"run as non root", ds, "        runAsNonRoot: false\n", "        runAsNonRoot: true\n", "loses the added capabilities"},
		{"no memory limit", ds, "              memory: 512Mi\n", "", "limits.memory is missing"},
		{"tiny memory limit", ds, "              memory: 512Mi\n", "              memory: 32Mi\n", "requests.memory (64Mi) is above the limit"},
		{"selector mismatch", ds, "    matchLabels:\n      app.kubernetes.io/name: tcpstated\n", "    matchLabels:\n      app.kubernetes.io/name: other\n", "does not match the template labels"},
		{"wrong namespace", ds, "  name: tcpstated\n  namespace: tcpstated\n  labels:\n    app.kubernetes.io/name: tcpstated\nspec:", "  name: tcpstated\n  namespace: default\n  labels:\n    app.kubernetes.io/name: tcpstated\nspec:", "not the file's namespace"},
		{"pod security label", ds, "pod-security.kubernetes.io/enforce: privileged", "pod-security.kubernetes.io/enforce: baseline", "pod-security.kubernetes.io/enforce"},
		{"token mounted", ds, "      automountServiceAccountToken: false\n", "      automountServiceAccountToken: true\n", "automountServiceAccountToken"},
		{"writable BTF hostPath", ds, "              mountPath: /sys/kernel/btf\n              readOnly: true\n", "              mountPath: /sys/kernel/btf\n              readOnly: false\n", "must be mounted readOnly"},

		// The network listener: metrics only, behind TLS and authentication.
		{"loopback listen", ds, "--listen=0.0.0.0:9932", "--listen=127.0.0.1:9932", "loopback"},
		{"listen port mismatch", ds, "--listen=0.0.0.0:9932", "--listen=0.0.0.0:9999", "differs from the metrics containerPort"},
		{"no metrics port", ds, "            - name: metrics\n", "            - name: http\n", "no port named metrics"},
		{"network listener without web config", ds, "            - --web.config.file=/etc/tcpstated/web/web-config.yml\n", "", "beyond loopback without --web.config.file"},
		{"allow unauthenticated", ds, "            - --sink=stdout\n", "            - --sink=stdout\n            - --allow-unauthenticated-listen\n", "--allow-unauthenticated-listen serves"},
		{"allow unauthenticated=true", ds, "            - --sink=stdout\n", "            - --sink=stdout\n            - -allow-unauthenticated-listen=true\n", "--allow-unauthenticated-listen serves"},
		{"allow unauthenticated=bad", ds, "            - --sink=stdout\n", "            - --sink=stdout\n            - --allow-unauthenticated-listen=maybe\n", "not a boolean"},
		{"API on the network", ds, "            - --sink=stdout\n", "            - --sink=stdout\n            - --listen-api\n", "--listen-api puts"},
		{"scrape annotation", ds, "      labels:\n        app.kubernetes.io/name: tcpstated\n    spec:", "      labels:\n        app.kubernetes.io/name: tcpstated\n      annotations:\n        prometheus.io/scrape: \"true\"\n    spec:", "annotation-based scrape jobs have no credentials"},

		// The web config Secret volume.
		{"web config outside the mount", ds, "--web.config.file=/etc/tcpstated/web/web-config.yml", "--web.config.file=/etc/tcpstated/web-config.yml", "no volume is mounted at /etc/tcpstated"},
		{"relative web config", ds, "--web.config.file=/etc/tcpstated/web/web-config.yml", "--web.config.file=web/web-config.yml", "not an absolute path"},
		{"web config not mounted", ds, "            - name: web\n              mountPath: /etc/tcpstated/web\n              readOnly: true\n", "", "no volume is mounted at /etc/tcpstated/web"},
		{"web config not a Secret", ds, "          secret:\n            secretName: tcpstated-web\n", "          emptyDir: {}\n          secretX:\n            secretName: tcpstated-web\n", "secretX"},
		{"web config in an emptyDir", ds, "          secret:\n            secretName: tcpstated-web\n            # Only the daemon (uid 0) reads the key.\n            defaultMode: 0400\n", "          emptyDir: {}\n", "is not a Secret"},
		{"web config writable", ds, "              mountPath: /etc/tcpstated/web\n              readOnly: true\n", "              mountPath: /etc/tcpstated/web\n              readOnly: false\n", "must be mounted readOnly"},
		{"web config subPath", ds, "              mountPath: /etc/tcpstated/web\n              readOnly: true\n", "              mountPath: /etc/tcpstated/web\n              subPath: web\n              readOnly: true\n", "subPath"},
		{"key readable by all", ds, "            defaultMode: 0400\n", "            defaultMode: 0644\n", "defaultMode 0644"},
		{"optional web config", ds, "            defaultMode: 0400\n", "            defaultMode: 0400\n            optional: true\n", "must not be optional"},
		{"items leave out the config", ds, "            defaultMode: 0400\n", "            defaultMode: 0400\n            items: [{key: tls.crt, path: tls.crt}]\n", "items leave out web-config.yml"},

		// Probes: exec over the API socket, never the authenticated port.
		{"httpGet probe", ds, "          readinessProbe:\n            exec:\n              command: [/tcpstated, health]\n", "          readinessProbe:\n            httpGet:\n              path: /healthz\n              port: metrics\n", "readinessProbe is an httpGet of port metrics"},
		{"httpGet liveness", ds, "          livenessProbe:\n            exec:\n              command: [/tcpstated, health]\n", "          livenessProbe:\n            httpGet:\n              path: /healthz\n              port: 9932\n              scheme: HTTPS\n", "livenessProbe is an httpGet of port 9932"},
		{"tcpSocket probe", ds, "          readinessProbe:\n            exec:\n              command: [/tcpstated, health]\n", "          readinessProbe:\n            tcpSocket:\n              port: metrics\n", "readinessProbe must be exec"},
		{"no liveness probe", ds, "          livenessProbe:\n            exec:\n              command: [/tcpstated, health]\n            initialDelaySeconds: 15\n            periodSeconds: 20\n            timeoutSeconds: 5\n            failureThreshold: 3\n", "", "livenessProbe is missing"},
		{"probe command", ds, "          readinessProbe:\n            exec:\n              command: [/tcpstated, health]\n", "          readinessProbe:\n            exec:\n              command: [/bin/true]\n", "readinessProbe command"},
		{"probe over the network", ds, "          readinessProbe:\n            exec:\n              command: [/tcpstated, health]\n", "          readinessProbe:\n            exec:\n              command: [/tcpstated, health, --addr=https://127.0.0.1:9932]\n", "is a network address"},
		{"probe with credentials", ds, "          livenessProbe:\n            exec:\n              command: [/tcpstated, health]\n", "          livenessProbe:\n            exec:\n              command: [/tcpstated, health, --addr=/run/tcpstated/api.sock, --password-file=/etc/tcpstated/web/pw]\n", "passes --password-file"},
		{"probe on another socket", ds, "          readinessProbe:\n            exec:\n              command: [/tcpstated, health]\n", "          readinessProbe:\n            exec:\n              command: [/tcpstated, health, --addr=/run/other.sock]\n", "is not the daemon's --api-socket"},
		{"startup probe httpGet", ds, "          readinessProbe:\n", "          startupProbe:\n            httpGet:\n              path: /healthz\n              port: metrics\n          readinessProbe:\n", "startupProbe is an httpGet"},

		// The API socket and its host directory.
		{"API socket off", ds, "--api-socket=/run/tcpstated/api.sock", "--api-socket=off", "--api-socket is off"},
		{"API socket moved", ds, "--api-socket=/run/tcpstated/api.sock", "--api-socket=/run/tcpstated2/api.sock", "add --addr=/run/tcpstated2/api.sock"},
		{"API socket directory not mounted", ds, "--api-socket=/run/tcpstated/api.sock", "--api-socket=/run/tcpstated2/api.sock", "directory /run/tcpstated2 is not mounted"},
		{"writable hostPath elsewhere", ds, "--api-socket=/run/tcpstated/api.sock", "--api-socket=/run/tcpstated2/api.sock", "only the --api-socket directory /run/tcpstated2 may be writable"},
		{"API socket directory not on the host", ds, "          hostPath:\n            path: /run/tcpstated\n            type: DirectoryOrCreate\n", "          emptyDir: {}\n", "is not a hostPath"},
		{"API socket directory read-only", ds, "              mountPath: /run/tcpstated\n", "              mountPath: /run/tcpstated\n              readOnly: true\n", "is readOnly: the daemon cannot create its socket"},
		{"API socket host directory outside /run", ds, "            path: /run/tcpstated\n", "            path: /etc/tcpstated\n", "is not under /run"},

		// The Secret's web config.
		{"Secret name", secret, "  name: tcpstated-web\n", "  name: tcpstated-web2\n", `mounts the Secret "tcpstated-web", not this one`},
		{"Secret namespace", secret, "  namespace: tcpstated\n", "  namespace: default\n", "not the DaemonSet's"},
		{"Secret type", secret, "type: Opaque\n", "type: kubernetes.io/basic-auth\n", "want Opaque"},
		{"web config key missing", secret, "  web-config.yml: |\n", "  web.yml: |\n", "has no key web-config.yml"},
		{"web config unknown field", secret, "      min_version: TLS12\n", "      min_versoin: TLS12\n", "field min_versoin not found"},
		{"web config without TLS", secret, "    tls_server_config:\n      cert_file: tls.crt\n      key_file: tls.key\n      min_version: TLS12\n", "", "no tls_server_config cert_file"},
		{"web config without auth", secret, "    basic_auth_users:\n      prometheus: REPLACE-with-a-bcrypt-hash\n", "", "neither basic_auth_users nor client_auth_type"},
		{"client certificates not verified", secret, "    basic_auth_users:\n      prometheus: REPLACE-with-a-bcrypt-hash\n", "      client_auth_type: RequireAnyClientCert\n", "neither basic_auth_users nor client_auth_type"},
		{"plaintext password", secret, "      prometheus: REPLACE-with-a-bcrypt-hash\n", "      prometheus: hunter2\n", "not a bcrypt hash"},
		{"cert file not in the Secret", secret, "      cert_file: tls.crt\n", "      cert_file: server.crt\n", "cert_file server.crt: the Secret has no such key"},
		{"cert file elsewhere", secret, "      key_file: tls.key\n", "      key_file: /etc/ssl/private/tcpstated.key\n", "is not a file of this Secret"},
		{"client CA not in the Secret", secret, "      min_version: TLS12\n", "      min_version: TLS12\n      client_ca_file: ca.crt\n", "client_ca_file ca.crt: the Secret has no such key"},

		// The scrape job.
		{"scrape over http", scrape, "    scheme: https\n", "    scheme: http\n", "want https"},
		{"scrape without verification", scrape, "      server_name: tcpstated\n", "      server_name: tcpstated\n      insecure_skip_verify: true\n", "insecure_skip_verify"},
		{"scrape without CA", scrape, "      ca_file: /etc/prometheus/secrets/tcpstated-scrape/ca.crt\n", "", "no ca_file"},
		{"scrape without server name", scrape, "      server_name: tcpstated\n", "", "no server_name"},
		{"scrape without auth", scrape, "    basic_auth:\n      username: prometheus\n      password_file: /etc/prometheus/secrets/tcpstated-scrape/password\n", "", "has no basic_auth"},
		{"scrape inline password", scrape, "      password_file: /etc/prometheus/secrets/tcpstated-scrape/password\n", "      password: hunter2\n", "password is inline"},
		{"scrape unknown user", scrape, "      username: prometheus\n", "      username: scraper\n", `username "scraper" is not one of the web config's basic_auth_users [prometheus]`},
		{"scrape other path", scrape, "    metrics_path: /metrics\n", "    metrics_path: /api/v1/sockets\n", "metrics_path /api/v1/sockets"},
		{"scrape other namespace", scrape, "          names: [tcpstated]\n", "          names: [monitoring]\n", "no job scrapes the DaemonSet's pods"},
		{"scrape every namespace", scrape, "        namespaces:\n          names: [tcpstated]\n", "", "in other namespaces"},
		{"scrape every port", scrape, "      - source_labels: [__meta_kubernetes_pod_container_port_name]\n        regex: metrics\n        action: keep\n", "", "container ports other than metrics"},
		// Either the selector or the keep rule alone keeps other apps out
		// (accepted: no error wanted); without both the job takes them in.
		{"scrape without selector", scrape, "        selectors:\n          - role: pod\n            label: app.kubernetes.io/name=tcpstated\n", "", ""},
		{"scrape without keep rule", scrape, "      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]\n        regex: tcpstated\n        action: keep\n", "", ""},
		{"scrape every app", scrape, "        selectors:\n          - role: pod\n            label: app.kubernetes.io/name=tcpstated\n    relabel_configs:\n      # Only the DaemonSet's pods, only their metrics port: the credentials\n      # go nowhere else.\n      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]\n        regex: tcpstated\n        action: keep\n", "    relabel_configs:\n", "also scrapes pods labelled app.kubernetes.io/name=some-other-app"},
		{"scrape bad selector", scrape, "            label: app.kubernetes.io/name=tcpstated\n", "            label: app.kubernetes.io/name in (tcpstated\n", "selector"},
		{"allow unauthenticated in command", ds, "          imagePullPolicy: IfNotPresent\n", "          imagePullPolicy: IfNotPresent\n          command: [/tcpstated, --allow-unauthenticated-listen]\n", "--allow-unauthenticated-listen serves"},
		{"allow unauthenticated=false", ds, "            - --sink=stdout\n", "            - --sink=stdout\n            - --allow-unauthenticated-listen=false\n", ""},
		{"scrape wrong port", scrape, "      - source_labels: [__meta_kubernetes_pod_node_name]\n        target_label: node\n", "      - source_labels: [__meta_kubernetes_pod_host_ip]\n        target_label: __address__\n        replacement: $1:9100\n", "not the metrics port 9932"},
		{"scrape bad regex", scrape, "        regex: metrics\n", "        regex: metrics(\n", "missing closing )"},
	}
	orig := map[string]string{ds: readManifest(t), secret: readFile(t, secretPath), scrape: readFile(t, scrapePath)}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := orig[tc.file]
			if strings.Count(o, tc.old) != 1 {
				t.Fatalf("%s has %d occurrences of %q, want exactly 1: update this case", tc.file, strings.Count(o, tc.old), tc.old)
			}
			files := map[string]string{}
			for k, v := range orig {
				files[k] = v
			}
			files[tc.file] = strings.Replace(o, tc.old, tc.new, 1)
			msgs := check(t, files[ds], files[secret], files[scrape])
			if tc.wantInErr == "" { // a variant that must be accepted
				if len(msgs) > 0 {
					t.Fatalf("rejected a deployment with %s:\n%s", tc.name, strings.Join(msgs, "\n"))
				}
				return
			}
			if len(msgs) == 0 {
				t.Fatalf("accepted a deployment with %s", tc.name)
			}
			all := strings.Join(msgs, "\n")
			if !strings.Contains(all, tc.wantInErr) {
				t.Fatalf("errors do not mention %q:\n%s", tc.wantInErr, all)
			}
		})
	}
}

func TestFlagValue(t *testing.T) {
	cases := []struct {
		args []string
		want string
		ok   bool
	}{
		{[]string{"run", "--listen=0.0.0.0:1"}, "0.0.0.0:1", true},
		{[]string{"run", "-listen=0.0.0.0:2"}, "0.0.0.0:2", true},
		{[]string{"run", "--listen", "0.0.0.0:3"}, "0.0.0.0:3", true},
		{[]string{"run", "---listen=x"}, "", false},
		{[]string{"run", "--listener=x"}, "", false},
		{[]string{"run"}, "", false},
		{[]string{"run", "--listen=a:1", "--listen", "b:2"}, "b:2", true}, // the last one counts
		{[]string{"run", "--listen=a:1", "--", "--listen=b:2"}, "a:1", true},
		{[]string{"run", "--listen"}, "", false},
	}
	for _, tc := range cases {
		got, ok := flagValue(tc.args, "listen")
		if got != tc.want || ok != tc.ok {
			t.Errorf("flagValue(%q) = %q, %v; want %q, %v", tc.args, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEmptyAndCommentOnlyDocumentsAreSkipped(t *testing.T) {
	m, err := Decode([]byte("# just a comment\n---\n---\n" + readManifest(t) + "\n---\n# trailing\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.DaemonSets) != 1 {
		t.Fatalf("got %d DaemonSets", len(m.DaemonSets))
	}
}

func TestFlagBool(t *testing.T) {
	cases := []struct {
		args    []string
		want    bool
		wantErr bool
	}{
		{[]string{"run"}, false, false},
		{[]string{"run", "--listen-api"}, true, false},
		{[]string{"run", "-listen-api"}, true, false},
		{[]string{"run", "--listen-api=true"}, true, false},
		{[]string{"run", "--listen-api=1"}, true, false},
		{[]string{"run", "--listen-api", "--listen-api=false"}, false, false},
		{[]string{"run", "--listen-api=nope"}, false, true},
		{[]string{"run", "--listen-apis"}, false, false},
		{[]string{"run", "--", "--listen-api"}, false, false},
	}
	for _, tc := range cases {
		got, err := flagBool(tc.args, "listen-api")
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("flagBool(%q) = %v, %v; want %v, error %v", tc.args, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestRelabel(t *testing.T) {
	str := func(s string) *string { return &s }
	in := map[string]string{"__address__": "192.0.2.1:9932", "__meta_kubernetes_pod_node_name": "node-1", "__meta_kubernetes_pod_label_app": "tcpstated"}
	cases := []struct {
		name  string
		rules []Relabel
		want  map[string]string // nil: dropped
	}{
		{"keep match", []Relabel{{SourceLabels: []string{"__meta_kubernetes_pod_label_app"}, Regex: str("tcp.*"), Action: "keep"}}, in},
		{"keep is anchored", []Relabel{{SourceLabels: []string{"__meta_kubernetes_pod_label_app"}, Regex: str("tcp"), Action: "keep"}}, nil},
		{"drop", []Relabel{{SourceLabels: []string{"__meta_kubernetes_pod_label_app"}, Regex: str("tcpstated"), Action: "drop"}}, nil},
		{"replace", []Relabel{{SourceLabels: []string{"__address__"}, Regex: str("(.*):.*"), TargetLabel: "__address__", Replacement: str("$1:9100")}},
			map[string]string{"__address__": "192.0.2.1:9100", "__meta_kubernetes_pod_node_name": "node-1", "__meta_kubernetes_pod_label_app": "tcpstated"}},
		{"labelmap", []Relabel{{Regex: str("__meta_kubernetes_pod_label_(.+)"), Replacement: str("$1"), Action: "labelmap"}},
			map[string]string{"__address__": "192.0.2.1:9932", "__meta_kubernetes_pod_node_name": "node-1", "__meta_kubernetes_pod_label_app": "tcpstated", "app": "tcpstated"}},
		{"labeldrop", []Relabel{{Regex: str("__meta_.*"), Action: "labeldrop"}}, map[string]string{"__address__": "192.0.2.1:9932"}},
		{"keepequal", []Relabel{{SourceLabels: []string{"__meta_kubernetes_pod_label_app"}, TargetLabel: "__meta_kubernetes_pod_node_name", Action: "keepequal"}}, nil},
	}
	for _, tc := range cases {
		j := &ScrapeJob{JobName: "x", RelabelConfigs: tc.rules}
		got, err := j.relabel(in)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if (got == nil) != (tc.want == nil) || len(got) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", tc.name, k, got[k], v)
			}
		}
	}
}
