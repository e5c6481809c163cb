package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/internal/printable"
)

// command is a subcommand of the tool.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

// commands are the subcommands in the order help lists them. Files other
// than this one add theirs with register, from an init function.
var commands = []command{
	{"init", "write a commented default configuration file", cmdInit},
	{"config", "print the configuration a run would use, with every default filled in", cmdConfig},
	{"inspect", "show the model as it will train: shapes, parameters, BatchNorm, sizes", cmdInspect},
	{"run", "train as configured", cmdRun},
	{"eval", "evaluate a checkpoint on a folder of labelled images", cmdEval},
	{"predict", "classify images with a checkpoint", cmdPredict},
	{"version", "print the versions of finetune, Go and libtorch", cmdVersion},
}

// register adds a subcommand (demo.go adds "demo"). run returns nil on
// success; errors map to exit statuses as exitStatus says.
func register(name, summary string, run func(ctx context.Context, args []string) error) {
	commands = append(commands, command{name, summary, run})
}

// verbose is set by every command's --verbose flag: errors then print
// their causes, and a panic its stack.
var verbose bool

func main() { os.Exit(execute(os.Args[1:])) }

// execute runs the command line args and returns the exit status.
func execute(args []string) (status int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "finetune: internal error: %v\n", r)
			if verbose {
				os.Stderr.Write(debug.Stack())
			} else {
				fmt.Fprintln(os.Stderr, "finetune: run again with --verbose for the stack trace")
			}
			status = exitFailed
		}
	}()
	if len(args) == 0 {
		printUsage(os.Stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		printUsage(os.Stdout)
		return exitOK
	case "help":
		if len(args) == 1 {
			printUsage(os.Stdout)
			return exitOK
		}
		name, args = args[1], []string{name, "--help"}
	case "-version", "--version":
		name = "version"
	}
	cmd := lookup(name)
	if cmd == nil {
		names := make([]string, len(commands))
		for i, c := range commands {
			names[i] = c.name
		}
		fmt.Fprintf(os.Stderr, "finetune: unknown command %q%s; run 'finetune --help' for the list\n", name, didYouMean(name, names, ""))
		return exitUsage
	}
	if cmd.name == "launch" {
		// The launcher forwards signals to its children itself.
		return exitStatus(cmd.run(context.Background(), args[1:]), false)
	}
	ctx, interrupted := interruptible()
	return exitStatus(cmd.run(ctx, args[1:]), interrupted.Load())
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// interruptible returns a context cancelled by the first SIGINT or
// SIGTERM, which also restores the default handling, so that a second
// one stops the process at once.
func interruptible() (context.Context, *atomic.Bool) {
	ctx, cancel := context.WithCancel(context.Background())
	var interrupted atomic.Bool
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		interrupted.Store(true)
		fmt.Fprintln(os.Stderr, "finetune: interrupted: stopping after the current step (interrupt again to quit at once)")
		cancel()
	}()
	return ctx, &interrupted
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `finetune fine-tunes pretrained CNNs (ResNet50 first) on small image datasets,
with overfitting and BatchNorm handled right by default.

Usage: finetune <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
A run is configured by a file (finetune init writes one), FINETUNE_<KEY>
environment variables and --<key> flags, each winning over the one before.
Run 'finetune <command> --help' for a command's flags.
`)
}

// errHelp is returned by a command that printed its help as asked.
var errHelp = errors.New("help shown")

// usageError is a mistake in the command line or the configuration.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usageError.
func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// exitStatus prints err, if any, and returns the exit status it means:
// 0 success, 1 failure, 2 a usage or configuration error, 130 an
// interruption.
func exitStatus(err error, interrupted bool) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	status := exitFailed
	var ue usageError
	var ce *finetune.ConfigError
	switch {
	case errors.Is(err, finetune.ErrInterrupted) || interrupted:
		status = exitInterrupted
	case errors.As(err, &ue) || errors.As(err, &ce):
		status = exitUsage
	}
	fmt.Fprintf(os.Stderr, "finetune: %s\n", printable.Text(err.Error()))
	if verbose {
		printCauses(os.Stderr, err, "  ")
	}
	return status
}

// printCauses prints the errors err wraps, one per line, indented by
// depth (a wrapper that adds nothing is skipped), and each problem of a
// ConfigError.
func printCauses(w io.Writer, err error, indent string) {
	if ce, ok := err.(*finetune.ConfigError); ok && len(ce.Problems) > 1 {
		for _, p := range ce.Problems {
			fmt.Fprintf(w, "%s- %s\n", indent, p)
		}
	}
	var causes []error
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		causes = []error{u.Unwrap()}
	case interface{ Unwrap() []error }:
		causes = u.Unwrap()
	}
	for _, c := range causes {
		switch {
		case c == nil:
		case c.Error() == err.Error():
			printCauses(w, c, indent)
		default:
			fmt.Fprintf(w, "%scaused by: %v\n", indent, c)
			printCauses(w, c, indent+"  ")
		}
	}
}
