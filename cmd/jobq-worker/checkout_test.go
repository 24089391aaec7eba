package main

import (
	"strings"
	"testing"

	"github.com/jobq/jobq/runner"
)

// JOBQ_CHECKOUT_FILES and JOBQ_MIN_FREE: defaults, values, and one clear
// line for a bad value.
func TestCheckoutLimits(t *testing.T) {
	def := runner.DefaultCheckoutLimits()
	rows := []struct {
		files, minFree string
		want           runner.CheckoutLimits
		err            string
	}{
		{"", "", def, ""},
		{"5000", "", runner.CheckoutLimits{Files: 5000, MinFree: def.MinFree}, ""},
		{"", "512m", runner.CheckoutLimits{Files: def.Files, MinFree: 512 << 20}, ""},
		{"1", "0", runner.CheckoutLimits{Files: 1, MinFree: 0}, ""},
		{"0", "", def, `JOBQ_CHECKOUT_FILES="0" is not a positive number`},
		{"-3", "", def, `JOBQ_CHECKOUT_FILES="-3" is not a positive number`},
		{"1e6", "", def, `JOBQ_CHECKOUT_FILES="1e6" is not a positive number`},
		{"99999999999999999999", "", def, `JOBQ_CHECKOUT_FILES="99999999999999999999" is not a positive number`},
		{"", "lots", def, `JOBQ_MIN_FREE="lots" is not a size (like 512m or 2g)`},
		{"", "-1g", def, `JOBQ_MIN_FREE="-1g" is not a size (like 512m or 2g)`},
		{"", "1\n$(reboot)", def, `JOBQ_MIN_FREE="1\n$(reboot)" is not a size (like 512m or 2g)`},
	}
	for _, row := range rows {
		env := map[string]string{"JOBQ_CHECKOUT_FILES": row.files, "JOBQ_MIN_FREE": row.minFree}
		got, err := checkoutLimits(func(k string) string { return env[k] })
		if row.err != "" {
			if err == nil || err.Error() != row.err || strings.Contains(err.Error(), "\n") {
				t.Errorf("%q %q: error %v, want %s", row.files, row.minFree, err, row.err)
			}
			continue
		}
		if err != nil || got != row.want {
			t.Errorf("%q %q: %+v %v, want %+v", row.files, row.minFree, got, err, row.want)
		}
	}
}
