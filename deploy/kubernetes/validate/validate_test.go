package main

import (
	"os"
	"strings"
	"testing"
)

const manifestPath = "../daemonset.yaml"

func readManifest(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestShippedManifestIsValid(t *testing.T) {
	m, err := Decode([]byte(readManifest(t)))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	for _, e := range Check(m) {
		t.Error(e)
	}
}

// Each case breaks the shipped manifest in one way and names a word the
// error must contain. The edit must apply: a case whose text no longer
// occurs in the manifest fails instead of passing vacuously.
func TestBrokenManifestsAreRejected(t *testing.T) {
	cases := []struct {
		name      string
		old, new  string
		wantInErr string
	}{
		{"unknown field", "      hostPID: true\n", "      hostPID: true\n      hostPIDs: true\n", `unknown field "spec.template.spec.hostPIDs"`},
		{"miscased field", "      hostPID: true\n", "      hostPid: true\n", `unknown field "spec.template.spec.hostPid"`},
		{"unknown nested field", "            readOnlyRootFilesystem: true\n", "            readOnlyRootFilesystem: true\n            readOnlyRootFS: true\n", "readOnlyRootFS"},
		{"duplicate field", "      hostPID: true\n", "      hostPID: true\n      hostPID: true\n", "already set"},
		{"wrong type", "      hostPID: true\n", "      hostPID: \"yes\"\n", "hostPID"},
		{"unknown kind", "kind: ServiceAccount\n", "kind: ServiceAcount\n", "unexpected kind"},
		{"no hostPID", "      hostPID: true\n", "      hostPID: false\n", "hostPID must be true"},
		{"no hostNetwork", "      hostNetwork: true\n", "      hostNetwork: false\n", "hostNetwork must be true"},
		{"dns policy", "      dnsPolicy: ClusterFirstWithHostNet\n", "      dnsPolicy: ClusterFirst\n", "ClusterFirstWithHostNet"},
		{"extra capability", "                - SYS_ADMIN\n", "                - SYS_ADMIN\n                - NET_ADMIN\n", "want exactly"},
		{"missing capability", "                - PERFMON\n", "", "want exactly"},
		{"no drop all", "                - ALL\n", "                - NET_RAW\n", "drop must contain ALL"},
		{"privileged", "            privileged: false\n", "            privileged: true\n", "privileged must not be true"},
		{"escalation", "            allowPrivilegeEscalation: false\n", "            allowPrivilegeEscalation: true\n", "allowPrivilegeEscalation"},
		{"writable root", "            readOnlyRootFilesystem: true\n", "            readOnlyRootFilesystem: false\n", "readOnlyRootFilesystem"},
		{"non-root uid", "        runAsUser: 0\n", "        runAsUser: 65534\n", "loses the added capabilities"},
		{"run as non root", "        runAsNonRoot: false\n", "        runAsNonRoot: true\n", "loses the added capabilities"},
		{"no memory limit", "              memory: 512Mi\n", "", "limits.memory is missing"},
		{"tiny memory limit", "              memory: 512Mi\n", "              memory: 32Mi\n", "requests.memory (64Mi) is above the limit"},
		{"loopback listen", "--listen=0.0.0.0:9932", "--listen=127.0.0.1:9932", "loopback"},
		{"listen port mismatch", "--listen=0.0.0.0:9932", "--listen=0.0.0.0:9999", "differs from the metrics containerPort"},
		{"annotation port mismatch", `prometheus.io/port: "9932"`, `prometheus.io/port: "9090"`, "differs from the metrics containerPort"},
		{"no scrape annotation", `prometheus.io/scrape: "true"`, `prometheus.io/scrape: "false"`, "prometheus.io/scrape"},
		{"probe path", "path: /healthz\n              port: metrics\n            periodSeconds: 10\n", "path: /ready\n              port: metrics\n            periodSeconds: 10\n", "readinessProbe path"},
		{"writable hostPath", "              readOnly: true\n", "              readOnly: false\n", "must be mounted readOnly"},
		{"selector mismatch", "    matchLabels:\n      app.kubernetes.io/name: tcpstated\n", "    matchLabels:\n      app.kubernetes.io/name: other\n", "does not match the template labels"},
		{"wrong namespace", "  name: tcpstated\n  namespace: tcpstated\n  labels:\n    app.kubernetes.io/name: tcpstated\nspec:", "  name: tcpstated\n  namespace: default\n  labels:\n    app.kubernetes.io/name: tcpstated\nspec:", "not the file's namespace"},
		{"pod security label", "pod-security.kubernetes.io/enforce: privileged", "pod-security.kubernetes.io/enforce: baseline", "pod-security.kubernetes.io/enforce"},
		{"token mounted", "      automountServiceAccountToken: false\n", "      automountServiceAccountToken: true\n", "automountServiceAccountToken"},
	}
	orig := readManifest(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Count(orig, tc.old) != 1 {
				t.Fatalf("the manifest has %d occurrences of %q, want exactly 1: update this case", strings.Count(orig, tc.old), tc.old)
			}
			broken := strings.Replace(orig, tc.old, tc.new, 1)
			var msgs []string
			m, err := Decode([]byte(broken))
			if err != nil {
				msgs = append(msgs, err.Error())
			} else {
				for _, e := range Check(m) {
					msgs = append(msgs, e.Error())
				}
			}
			if len(msgs) == 0 {
				t.Fatalf("accepted a manifest with %s", tc.name)
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
