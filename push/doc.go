// Package push reads a push for the hook: the post-receive input (which
// refs changed), the repository's JOBQ_* options, the ref filter that
// selects the refs that queue jobs, and the shell-like word splitting of
// a command. It checks everything before a job is queued; the records it
// fills in are the store's (package queue).
package push
