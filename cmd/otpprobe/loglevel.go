package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// logLevel is the --log-level flag: debug, info (default), warn or error.
type logLevel struct{ slog.LevelVar }

func (l *logLevel) Set(s string) error {
	switch strings.ToLower(s) {
	case "debug":
		l.LevelVar.Set(slog.LevelDebug)
	case "info":
		l.LevelVar.Set(slog.LevelInfo)
	case "warn", "warning":
		l.LevelVar.Set(slog.LevelWarn)
	case "error":
		l.LevelVar.Set(slog.LevelError)
	default:
		return fmt.Errorf("want debug, info, warn or error, got %q", s)
	}
	return nil
}

func (l *logLevel) String() string {
	if l == nil {
		return "info"
	}
	return strings.ToLower(l.Level().String())
}

func logLevelFlag(fs *flag.FlagSet) *logLevel {
	l := &logLevel{}
	fs.Var(l, "log-level", "log level: debug, info, warn or error")
	return l
}

// jsonLogger is the daemon's logger: JSON lines on stderr at level l.
func jsonLogger(stderr io.Writer, l *logLevel) *slog.Logger {
	return slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: &l.LevelVar}))
}
