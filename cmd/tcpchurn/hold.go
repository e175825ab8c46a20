package main

const holdWorkerCommand = "hold-worker"

func runHold(args []string) error       { return nil }
func runHoldWorker(args []string) error { return nil }
