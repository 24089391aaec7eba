//go:build !faultinject

package faults

// Enabled says whether this build stops at fault points.
const Enabled = false

// Point does nothing without the faultinject tag.
func Point(string) {}
