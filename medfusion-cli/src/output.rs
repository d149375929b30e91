//! How the CLI reports errors and picks exit codes.

use std::io::Write as _;
use std::process::ExitCode;

/// `text` with control characters other than newline and tab written as `\u{1b}`, so
/// that names from files (node ids, paths, messages) cannot move the cursor, recolour or
/// retitle the user's terminal.
pub(crate) fn escaped(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Write to stdout; errors (a closed pipe) drop the text. See `outln!`.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>, newline: bool) {
    let text = args.to_string();
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(escaped(&text).as_bytes());
    if newline {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// Write a line to stderr; errors (a closed pipe) drop the line. See `errln!`.
pub(crate) fn write_err(args: std::fmt::Arguments<'_>) {
    let text = args.to_string();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(escaped(&text).as_bytes());
    let _ = err.write_all(b"\n");
}

/// Exit code for an invalid workflow file (parse or validation problems).
pub(crate) const EXIT_INVALID: u8 = 2;
/// Exit code for a failed run or command.
pub(crate) const EXIT_FAILED: u8 = 1;

/// An error and its causes on one line, `: `-separated.
pub(crate) fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Print an error and its causes to stderr, validation problems one per line.
pub(crate) fn print_error(err: &anyhow::Error) {
    if let Some(problems) = err
        .downcast_ref::<medfusion_graph::Error>()
        .and_then(|e| e.problems())
    {
        print_problems(problems);
        return;
    }
    errln!("error: {err}");
    for cause in err.chain().skip(1) {
        errln!("  caused by: {cause}");
    }
}

/// Print each validation problem on its own line, then a count.
pub(crate) fn print_problems(problems: &medfusion_graph::Problems) {
    for p in &problems.problems {
        errln!("error: {}", p.render(problems.file.as_deref()));
    }
    let n = problems.problems.len();
    let what = problems.file.as_ref().map_or_else(
        || "the workflow".to_string(),
        |f| format!("`{}`", f.display()),
    );
    errln!(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_but_lines_kept() {
        assert_eq!(escaped("plain `id`\n\tok"), "plain `id`\n\tok");
        assert_eq!(escaped("node `a\u{1b}[31mred`"), "node `a\\u{1b}[31mred`");
        assert_eq!(escaped("bell\u{7}\r"), "bell\\u{7}\\u{d}");
    }
}
