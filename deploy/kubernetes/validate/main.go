// Command validate checks the Kubernetes manifests in deploy/kubernetes
// without a cluster: each document must decode strictly into its API type
// (k8s.io/api), and the DaemonSet must keep the properties docs/deploy.md
// relies on (host namespaces, the exact capability set, probes and scrape
// port in agreement, resources set).
//
// Usage: go run . ../daemonset.yaml [more.yaml ...]
//
// It lives in its own module so that the root module does not depend on
// the Kubernetes libraries.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: validate FILE.yaml...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		if err := validateFile(path); err != nil {
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func validateFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
		return err
	}
	m, err := Decode(data)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
		return err
	}
	errs := Check(m)
	for _, e := range errs {
		fmt.Fprintf(os.Stderr, "%s: %v\n", path, e)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %d problems", path, len(errs))
	}
	fmt.Printf("%s: ok (Namespace %s, ServiceAccount %s, DaemonSet %s)\n",
		path, m.Namespaces[0].Name, m.ServiceAccounts[0].Name, m.DaemonSets[0].Name)
	return nil
}
