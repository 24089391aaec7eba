package secret

import (
	"fmt"
	"sort"
	"strings"

	"github.com/jobq/jobq/push"
)

// Grant is one entry of JOBQ_SECRETS: the secret Name, given to the jobs
// of the refs Pattern selects ("" : every ref), as the file NAME and, with
// Var, also as that environment variable.
type Grant struct {
	Name    string
	Var     string
	Pattern string
	filter  push.RefFilter
}

// Selects reports whether g gives its secret to the jobs of ref.
func (g Grant) Selects(ref string) bool {
	return g.Pattern == "" || g.filter.Match(ref)
}

// reservedVars are variables a secret may not be: the job's own (runner.Env,
// GIT_DIR, JOBQ_SECRETS_DIR), and those the shell, the dynamic loader or
// the job's programs read before the job's command does anything (a
// secret as PATH or LD_PRELOAD would break the job or run the value).
var reservedVars = map[string]bool{
	"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true, "PWD": true, "OLDPWD": true,
	"IFS": true, "ENV": true, "BASH_ENV": true, "CDPATH": true, "PS1": true, "PS2": true, "PS4": true,
	"TERM": true, "TMPDIR": true, "TZ": true, "LANG": true, "LANGUAGE": true, "HOSTNAME": true,
	"CI": true, "container": true, "SHLVL": true, "MAIL": true,
}

// reservedPrefixes begin variables of jobq (JOBQ_), gitolite (GL_), git
// (GIT_), the dynamic loader (LD_), the locale (LC_), bash's exported
// functions and the session (XDG_).
var reservedPrefixes = []string{"JOBQ_", "GL_", "GIT_", "LD_", "LC_", "BASH_FUNC_", "XDG_"}

// ValidVar checks VAR of NAME:VAR: a portable environment variable name
// that the job or jobq does not need for something else.
func ValidVar(v string) error {
	if v == "" {
		return fmt.Errorf("empty variable name")
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return fmt.Errorf("%q is not a variable name (letters, digits, '_', not a digit first)", v)
		}
	}
	if reservedVars[v] {
		return fmt.Errorf("%s is a variable the job needs for itself", v)
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(v, p) {
			return fmt.Errorf("%s: variables beginning with %s are reserved", v, p)
		}
	}
	return nil
}

// ParseGrants reads JOBQ_SECRETS: space-separated NAME[:VAR][@REFPATTERN].
// One name may have several entries (several patterns) with the same VAR;
// two names may not share a VAR.
func ParseGrants(s string) ([]Grant, error) {
	var gs []Grant
	vars := map[string]string{}  // name -> its VAR
	owner := map[string]string{} // VAR -> its name
	for _, e := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		g, err := parseGrant(e)
		if err != nil {
			return nil, fmt.Errorf("JOBQ_SECRETS entry %q: %w", e, err)
		}
		if v, seen := vars[g.Name]; seen && v != g.Var {
			return nil, fmt.Errorf("JOBQ_SECRETS: %s has entries with different variables (%q, %q)", g.Name, v, g.Var)
		}
		vars[g.Name] = g.Var
		if g.Var != "" {
			if n, seen := owner[g.Var]; seen && n != g.Name {
				return nil, fmt.Errorf("JOBQ_SECRETS: %s and %s both name the variable %s", n, g.Name, g.Var)
			}
			owner[g.Var] = g.Name
		}
		gs = append(gs, g)
	}
	return gs, nil
}

func parseGrant(e string) (Grant, error) {
	var g Grant
	left, pattern, hasPattern := strings.Cut(e, "@")
	g.Name, g.Var, _ = strings.Cut(left, ":")
	if err := ValidName(g.Name); err != nil {
		return g, err
	}
	if strings.Contains(left, ":") {
		if err := ValidVar(g.Var); err != nil {
			return g, err
		}
	}
	if hasPattern {
		// A pattern that is no full ref name would select nothing, silently.
		if !strings.HasPrefix(strings.TrimPrefix(pattern, "!"), "refs/") {
			return g, fmt.Errorf("ref pattern %q does not begin with refs/", pattern)
		}
		f, err := push.ParseRefFilter(pattern)
		if err != nil {
			return g, err
		}
		g.Pattern, g.filter = pattern, f
	}
	return g, nil
}

// Resolve sorts grants for the jobs of ref: given, one grant per name (its
// name and VAR) that some entry selects ref for, and withheld, the names
// none of whose entries does; both by name.
func Resolve(grants []Grant, ref string) (given []Grant, withheld []string) {
	selected := map[string]bool{}
	byName := map[string]Grant{}
	for _, g := range grants {
		if _, ok := byName[g.Name]; !ok {
			byName[g.Name] = Grant{Name: g.Name, Var: g.Var}
		}
		if g.Selects(ref) {
			selected[g.Name] = true
		}
	}
	for name, g := range byName {
		if selected[name] {
			given = append(given, g)
		} else {
			withheld = append(withheld, name)
		}
	}
	sort.Slice(given, func(i, j int) bool { return given[i].Name < given[j].Name })
	sort.Strings(withheld)
	return given, withheld
}
