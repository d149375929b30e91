//! How the CLI reports errors and picks exit codes.

#![allow(clippy::print_stderr)]

use std::process::ExitCode;

/// Exit code for an invalid workflow file (parse or validation problems).
pub(crate) const EXIT_INVALID: u8 = 2;
/// Exit code for a failed run or command.
pub(crate) const EXIT_FAILED: u8 = 1;

/// Print an error and its causes to stderr, validation problems one per line.
pub(crate) fn print_error(err: &anyhow::Error) {
    if let Some(problems) = err
        .downcast_ref::<medfusion_graph::Error>()
        .and_then(|e| e.problems())
    {
        print_problems(problems);
        return;
    }
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// Print each validation problem on its own line, then a count.
pub(crate) fn print_problems(problems: &medfusion_graph::Problems) {
    for p in &problems.problems {
        eprintln!("error: {}", p.render(problems.file.as_deref()));
    }
    let n = problems.problems.len();
    let what = problems.file.as_ref().map_or_else(
        || "the workflow".to_string(),
        |f| format!("`{}`", f.display()),
    );
    eprintln!(
        "error: {what} is invalid: {n} problem{}",
        if n == 1 { "" } else { "s" }
    );
}

/// The exit code for an error: 2 when the workflow is at fault, else 1.
pub(crate) fn exit_code(err: &anyhow::Error) -> ExitCode {
    let invalid = err.chain().any(|c| {
        c.downcast_ref::<medfusion_graph::Error>()
            .is_some_and(medfusion_graph::Error::is_invalid_workflow)
    });
    ExitCode::from(if invalid { EXIT_INVALID } else { EXIT_FAILED })
}
