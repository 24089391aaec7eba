package main

import (
	"strings"
	"testing"

	"github.com/jobq/jobq/internal/gittree"
)

// JOBQ_CHECKOUT_FILES: default, values, and one clear line for a bad
// value; JOBQ_MIN_FREE (read with the worker's settings) passes through.
func TestCheckoutLimits(t *testing.T) {
	const minFree = 512 << 20
	def := gittree.Limits{Files: gittree.DefaultFiles, MinFree: minFree}
	rows := []struct {
		files string
		want  gittree.Limits
		err   string
	}{
		{"", def, ""},
		{"5000", gittree.Limits{Files: 5000, MinFree: minFree}, ""},
		{"1", gittree.Limits{Files: 1, MinFree: minFree}, ""},
		{"0", def, `JOBQ_CHECKOUT_FILES="0" is not a positive number`},
		{"-3", def, `JOBQ_CHECKOUT_FILES="-3" is not a positive number`},
		{"1e6", def, `JOBQ_CHECKOUT_FILES="1e6" is not a positive number`},
		{"99999999999999999999", def, `JOBQ_CHECKOUT_FILES="99999999999999999999" is not a positive number`},
		{"1\n$(reboot)", def, `JOBQ_CHECKOUT_FILES="1\n$(reboot)" is not a positive number`},
	}
	for _, row := range rows {
		env := map[string]string{"JOBQ_CHECKOUT_FILES": row.files}
		got, err := checkoutLimits(func(k string) string { return env[k] }, minFree)
		if row.err != "" {
			if err == nil || err.Error() != row.err || strings.Contains(err.Error(), "\n") {
				t.Errorf("%q: error %v, want %s", row.files, err, row.err)
			}
			continue
		}
		if err != nil || got != row.want {
			t.Errorf("%q: %+v %v, want %+v", row.files, got, err, row.want)
		}
	}
}
