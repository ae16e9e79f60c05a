//! Progress: a bar redrawn in place when stderr is a terminal (a pseudo-terminal here, opened by
//! Python's `pty`), nothing drawn with `-q` or `--no-progress`, and never a redraw into a pipe.

mod support;

use std::process::Command;

use support::{Cmd, Store, Tree};

/// Runs the command with its stdin, stdout and stderr on a new pseudo-terminal; returns its exit
/// status and what the terminal showed.
fn in_terminal(cmd: Cmd) -> (i32, String) {
    const PTY: &str = "import os, pty, sys\nsys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))";
    let inner = &cmd.command;
    let mut outer = Command::new("python3");
    outer.arg("-c").arg(PTY).arg(inner.get_program()).args(inner.get_args()).env_clear();
    for (key, value) in inner.get_envs() {
        if let Some(value) = value {
            outer.env(key, value);
        }
    }
    outer.env("TERM", "xterm").current_dir(inner.get_current_dir().expect("the harness sets the working directory"));
    let out = outer.output().expect("python3 (its pty module) runs sitesync in a pseudo-terminal");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What only a drawn bar shows: its words, and the carriage return and erase-line of a redraw.
fn drew_a_bar(screen: &str) -> bool {
    screen.contains("scanning:") && screen.contains(" files") && screen.contains("\r\x1b[2K")
}

fn site() -> (Tree, Store) {
    let tree = Tree::new();
    tree.many(300);
    (tree, Store::start())
}

#[test]
fn a_terminal_gets_a_bar_that_is_gone_before_the_summary() {
    let (tree, store) = site();
    let (code, screen) = in_terminal(tree.sync(&store.endpoint(), &[]));
    assert_eq!(code, 0, "{screen}");
    assert!(drew_a_bar(&screen), "{screen:?}");
    let summary = screen.rfind("done: 300 uploaded").expect("the summary line");
    assert!(!screen[summary..].contains("scanning:"), "the bar is cleared before the summary: {screen:?}");
    assert_eq!(store.objects(), tree.expected());
}

#[test]
fn quiet_or_no_progress_draws_nothing_on_a_terminal_and_progress_draws_anyway() {
    let (tree, store) = site();
    for args in [&["-q"][..], &["--no-progress"], &["--progress", "--no-progress"]] {
        let (code, screen) = in_terminal(tree.sync(&store.endpoint(), args));
        assert_eq!(code, 0, "{args:?}: {screen}");
        assert!(!screen.contains("scanning:") && !screen.contains('\x1b'), "{args:?}: {screen:?}");
    }
    let (code, screen) = in_terminal(tree.sync(&store.endpoint(), &["-q", "--progress"]));
    assert_eq!(code, 0, "{screen}");
    assert!(drew_a_bar(&screen), "an explicit --progress wins over -q: {screen:?}");
}

#[test]
fn a_pipe_gets_no_redraws_even_when_progress_is_asked_for() {
    let (tree, store) = site();
    for args in [&[][..], &["--progress"]] {
        let run = tree.sync(&store.endpoint(), args).run().code(0);
        assert!(!run.stderr.contains('\r') && !run.stderr.contains('\x1b'), "{args:?}: {run}");
        assert!(run.stderr.contains("done: "), "{args:?}: {run}");
    }
}
