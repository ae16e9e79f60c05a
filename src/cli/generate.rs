//! Shell completions and the man page, generated from the clap definition at run time.
//!
//! Generated, not written: a flag added to [`SyncArgs`](super::SyncArgs) shows in `--help`, in
//! every completion script and in the man page with no second place to update. The page is one
//! file for the whole tool, `sitesync(1)`: the top-level command, then a section per command with
//! its synopsis and every flag, then the exit statuses, so `man sitesync` answers what
//! `sitesync help sync` does without a page per command to install.

use std::io::{self, Write};

use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, roman};

use super::Cli;
use crate::error::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE};

/// The name the scripts complete and the page is called by.
const BIN: &str = "sitesync";

/// Writes the completion script for `shell`.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn Write) -> io::Result<()> {
    // clap_complete panics when its writer fails: it writes to memory, and we write that.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut script);
    out.write_all(&script)
}

/// Writes the man page, `sitesync(1)`, as roff.
pub fn write_man(out: &mut dyn Write) -> io::Result<()> {
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let top = Man::new(cli.clone());
    let mut page = Page::default();
    page.add(|w| top.render_title(w), false)?;
    page.add(|w| top.render_name_section(w), false)?;
    page.add(|w| top.render_synopsis_section(w), false)?;
    page.add(|w| top.render_description_section(w), false)?;
    page.add(|w| top.render_options_section(w), false)?;
    for command in leaves(&cli) {
        page.add(|w| command_heading(command).to_writer(w), false)?;
        let man = Man::new(command.clone());
        page.add(|w| man.render_synopsis_section(w), true)?;
        if command.get_arguments().any(|a| !a.is_hide_set()) {
            page.add(|w| man.render_options_section(w), true)?;
        }
    }
    page.add(|w| exit_status().to_writer(w), false)?;
    page.add(|w| top.render_version_section(w), false)?;
    out.write_all(page.text.as_bytes())
}

/// The commands that run something (`sitesync report merge`, not `sitesync report`; but
/// `sitesync deploys`, which runs something besides `deploys purge`), in order.
fn leaves(command: &clap::Command) -> Vec<&clap::Command> {
    let mut found = Vec::new();
    for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
        let runs = sub.get_arguments().any(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "version");
        if !sub.has_subcommands() || runs {
            found.push(sub);
        }
        found.extend(leaves(sub));
    }
    found
}

/// A command's section heading (`SITESYNC REPORT MERGE`) and what it does.
fn command_heading(command: &clap::Command) -> Roff {
    let name = command.get_bin_name().unwrap_or_else(|| command.get_name()).to_uppercase();
    let mut roff = Roff::default();
    roff.control("SH", [name.as_str()]);
    if let Some(about) = command.get_long_about().or_else(|| command.get_about()) {
        roff.text([roman(about.to_string())]);
    }
    roff
}

/// The page, put together from pieces clap_mangen renders as whole documents.
#[derive(Default)]
struct Page {
    text: String,
    /// The roff preamble (which defines `\*(Aq`) is in; later copies of it are dropped.
    started: bool,
}

impl Page {
    /// Adds a rendered piece without the preamble every piece repeats; with `demote`, its sections
    /// become subsections (`.SS`) of the command section before it.
    fn add(&mut self, render: impl FnOnce(&mut dyn Write) -> io::Result<()>, demote: bool) -> io::Result<()> {
        let mut piece = Vec::new();
        render(&mut piece)?;
        for line in String::from_utf8_lossy(&piece).lines() {
            let preamble = line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq");
            if preamble && self.started {
                continue;
            }
            match line.strip_prefix(".SH ").filter(|_| demote) {
                Some(title) => self.text.push_str(&format!(".SS {title}")),
                None => self.text.push_str(line),
            }
            self.text.push('\n');
        }
        self.started = true;
        Ok(())
    }
}

fn exit_status() -> Roff {
    let statuses = [
        (EXIT_OK, "Every planned upload, copy and delete succeeded."),
        (EXIT_FAILED, "Something failed; each failure is named on stderr and in the report's failures."),
        (
            EXIT_USAGE,
            "Bad usage or configuration, a refused run (missing or empty source, delete limits), a held lock, \
             an existing sync.toml (init), a report that cannot be read or a shard's report missing or \
             repeated (report merge), or a deploy that is not recorded or nothing to roll back to (rollback).",
        ),
        (EXIT_INTERRUPTED, "Stopped by SIGINT or SIGTERM; run again to finish."),
    ];
    let mut roff = Roff::default();
    roff.control("SH", ["EXIT STATUS"]);
    for (status, meaning) in statuses {
        roff.control("TP", []);
        roff.text([roman(status.to_string())]);
        roff.text([roman(meaning)]);
    }
    roff.control("PP", []);
    roff.text([roman(
        "report merge exits with the status the whole run would have had: 130 if any report was \
         interrupted, else 2 if any was refused, else 1 if anything failed, else 0.",
    )]);
    roff
}
