package main

import (
	"encoding/json"
	"io"
	"os"
	"slices"
	"testing"
	"time"
)

// The hold test runs this test binary as its hold workers.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == holdWorkerCommand {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestHoldSplitsOverProcesses(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	err = holdInProcesses(301, 100, 2, 0, time.Second)
	os.Stdout = stdout
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	var ready holdReady
	if err := json.Unmarshal(out, &ready); err != nil {
		t.Fatalf("ready line %q: %v", out, err)
	}
	if !ready.Ready || ready.Connections != 301 || ready.Processes != 4 || len(ready.Ports) != 8 {
		t.Fatalf("got %+v", ready)
	}
}

func TestPortList(t *testing.T) {
	if got := portList(0, 4, 3); !slices.Equal(got, []int{0, 0, 0}) {
		t.Errorf("kernel-picked ports: %v", got)
	}
	if got := portList(30000, 4, 2); !slices.Equal(got, []int{30004, 30005}) {
		t.Errorf("ports from a base: %v", got)
	}
}
