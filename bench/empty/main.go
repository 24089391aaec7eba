// Command empty does nothing: the start-up baseline of a Go program, built
// with the same flags as jobq (bench/run.sh).
package main

func main() {}
