// Command validate checks the Kubernetes manifests in deploy/kubernetes
// without a cluster: each document must decode strictly into its API type
// (k8s.io/api), and the deployment must keep the properties docs/deploy.md
// relies on: host namespaces, the exact capability set, resources set, the
// network listener on the metrics port behind TLS and authentication, the
// web config Secret mounted read-only, exec probes over the API socket and
// its host directory. The files given form one deployment: a web config
// Secret (the template, or a filled-in copy) is checked against the
// DaemonSet, and with -prometheus, so is the scrape job.
//
// Usage: go run . [-prometheus scrape-config.yml] ../daemonset.yaml [more.yaml ...]
//
// It lives in its own module so that the root module does not depend on
// the Kubernetes libraries.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	prom := flag.String("prometheus", "", "a Prometheus configuration whose job must scrape the DaemonSet")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: validate [-prometheus FILE.yml] FILE.yaml...")
	}
	flag.Parse()
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	m, ok := &Manifest{}, true
	for _, path := range flag.Args() {
		part, err := loadManifest(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			ok = false
			continue
		}
		m.Add(part)
	}
	if *prom != "" {
		sc, err := ReadScrapeConfig(*prom)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			ok = false
		}
		m.Scrape = sc
	}
	if !ok {
		os.Exit(1)
	}
	files := strings.Join(flag.Args(), " ")
	if *prom != "" {
		files += " " + *prom
	}
	errs := Check(m)
	for _, e := range errs {
		fmt.Fprintf(os.Stderr, "%s: %v\n", files, e)
	}
	if len(errs) > 0 {
		os.Exit(1)
	}
	fmt.Printf("%s: ok (%s)\n", files, m.Summary())
}

func loadManifest(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(data)
}
