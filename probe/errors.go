package probe

import "errors"

// ErrNotFound is returned by a Store for an unknown attempt ID.
var ErrNotFound = errors.New("attempt not found")
