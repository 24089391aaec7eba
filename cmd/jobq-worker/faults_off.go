//go:build !faultinject

package main

// crashHook is nil in a normal build: no fault injection.
func crashHook() func(point string) { return nil }
