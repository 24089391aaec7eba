// Command checkout runs jobq's checkout once: checkout GIT_DIR REV DIR.
// bench/run.sh and bench/isolation.sh time it against git checkout --force.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/jobq/jobq/runner/podman"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: checkout GIT_DIR REV DIR")
		os.Exit(2)
	}
	err := podman.Checkout(context.Background(), os.Args[1], os.Args[2], os.Args[3], podman.DefaultCheckoutLimits())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
