// Package gittree writes the tree of one revision of a bare repository,
// straight from its objects, and nothing outside it: as a directory on
// disk (Checkout, checkout.go) or as a tar stream (Archive, archive.go),
// files with their executable bit, symlinks, no .git and no submodules.
//
// A pushed tree is hostile input: both check all of it (entry names as
// git's verify_path, depth, path lengths, the entry count of Limits)
// before anything is written, and Checkout creates every entry by its
// single name relative to an open directory, so that even a name the
// check let through cannot lead out. Checkout also stops before the
// filesystem's free space falls under Limits.MinFree.
package gittree
