//! Diagnostics: an error message with its position in a pipeline file, and "did you mean"
//! suggestions for misspelt names.
//!
//! Every check of a pipeline file reports [`Diagnostic`]s rather than failing on the first
//! problem; [`Diagnostics`] gathers all of one file's and renders them the way `eegd validate`
//! prints them, one per line, `FILE:LINE:COL: error: MESSAGE`, in file order.
//!
//! Message conventions: identifiers (keys, stage types and names) in backticks, bad values
//! quoted as they would be written in YAML (`"sinus"`, `64`).

use std::fmt;

/// A position in a file, 1-based as editors show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Span {
    /// Line, starting at 1.
    pub line: usize,
    /// Column in characters, starting at 1.
    pub col: usize,
}

impl Span {
    /// The position at `line`, `col` (both 1-based).
    pub const fn new(line: usize, col: usize) -> Self {
        Self { line, col }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One error, with where it is when it has a place in the file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Diagnostic {
    pub span: Option<Span>,
    pub message: String,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn at(span: Span, message: impl Into<String>) -> Self {
        Self { span: Some(span), message: message.into() }
    }

    /// An error about the file as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        Self { span: None, message: message.into() }
    }
}

/// `LINE:COL: MESSAGE`, or just the message when it has no position.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.span {
            Some(span) => write!(f, "{span}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// All errors of one file.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// The file's name as the user gave it; it starts every rendered line.
    pub file: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: impl Into<String>, items: Vec<Diagnostic>) -> Self {
        Self { file: file.into(), items }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }
}

/// One line per item, in file order (errors without a position first):
/// `FILE:LINE:COL: error: MESSAGE` or `FILE: error: MESSAGE`.
impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<&Diagnostic> = self.items.iter().collect();
        items.sort_by_key(|d| d.span); // stable: equal positions keep the order they were found
        for (i, d) in items.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            match d.span {
                Some(span) => write!(f, "{}:{span}: error: {}", self.file, d.message)?,
                None => write!(f, "{}: error: {}", self.file, d.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// How alike two names must be (Jaro-Winkler, 0 to 1) for one to be suggested for the other.
///
/// Chosen on real slips: `hzz`/`hz` 0.91, `sinus`/`sine` 0.85, `skip`/`skip_packet` 0.87 pass;
/// unrelated pairs such as `foo`/`order` (0.51) and `lowpass_hz`/`high_hz` (0.58) stay below.
const SIMILARITY_THRESHOLD: f64 = 0.8;

/// The candidate most like `name`, if any is alike enough to be what the user meant.
///
/// Case is ignored. Ties go to the earlier candidate.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_lowercase();
    let mut best: Option<(f64, &'a str)> = None;
    for candidate in candidates {
        let lower = candidate.to_lowercase();
        if lower == name {
            return Some(candidate);
        }
        let score = strsim::jaro_winkler(&name, &lower);
        if score >= SIMILARITY_THRESHOLD && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// `"; did you mean `x`?"` when a candidate is close to `name`, else `""`: ready to append to
/// a message.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(name, candidates).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default()
}

/// `` `a`, `b`, `c` ``: names for a message.
pub fn list_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: [&str; 3] = ["low_hz", "high_hz", "order"];
    const STAGES: [&str; 8] =
        ["emulator", "to_voltage", "notch", "bandpass", "downsample", "fft", "band_power", "websocket_sink"];

    #[test]
    fn suggests_close_names() {
        assert_eq!(closest("hzz", ["hz", "order"]), Some("hz"));
        assert_eq!(closest("bandpas", STAGES), Some("bandpass"));
        assert_eq!(closest("emulater", STAGES), Some("emulator"));
        assert_eq!(closest("to_voltag", STAGES), Some("to_voltage"));
        assert_eq!(closest("down_sample", STAGES), Some("downsample"));
        assert_eq!(closest("lowpass_hz", PARAMS), Some("low_hz"));
        assert_eq!(closest("sinus", ["eeg", "sine", "test"]), Some("sine"));
        assert_eq!(closest("skip", ["fatal", "drain_then_stop", "skip_packet"]), Some("skip_packet"));
    }

    #[test]
    fn prefers_the_closest_of_several_similar_names() {
        assert_eq!(closest("bandpas", ["bandstop", "bandpass"]), Some("bandpass"));
    }

    #[test]
    fn ignores_case() {
        assert_eq!(closest("Notch", STAGES), Some("notch"));
        assert_eq!(closest("BANDPAS", STAGES), Some("bandpass"));
    }

    #[test]
    fn suggests_nothing_for_unrelated_words() {
        assert_eq!(closest("foo", ["hz", "order"]), None);
        assert_eq!(closest("foo", PARAMS), None);
        assert_eq!(closest("xyz", STAGES), None);
        assert_eq!(closest("gain", ["rate", "size"]), None);
        assert_eq!(closest("a", ["b"]), None);
        assert_eq!(closest("anything", std::iter::empty()), None);
    }

    #[test]
    fn did_you_mean_formats_a_suffix_or_nothing() {
        assert_eq!(did_you_mean("hzz", ["hz"]), "; did you mean `hz`?");
        assert_eq!(did_you_mean("foo", ["hz"]), "");
    }

    #[test]
    fn lists_names_in_backticks() {
        assert_eq!(list_names(["hz", "order"]), "`hz`, `order`");
        assert_eq!(list_names([]), "");
    }

    #[test]
    fn renders_one_line_per_item_sorted_by_position() {
        let d = Diagnostics::new(
            "p.yaml",
            vec![
                Diagnostic::at(Span::new(3, 5), "third"),
                Diagnostic::at(Span::new(1, 9), "second"),
                Diagnostic::new("first"),
                Diagnostic::at(Span::new(1, 2), "also second"),
            ],
        );
        assert_eq!(
            d.to_string(),
            "p.yaml: error: first\n\
             p.yaml:1:2: error: also second\n\
             p.yaml:1:9: error: second\n\
             p.yaml:3:5: error: third"
        );
    }

    #[test]
    fn keeps_report_order_for_equal_positions() {
        let at = Span::new(2, 1);
        let d = Diagnostics::new("f", vec![Diagnostic::at(at, "a"), Diagnostic::at(at, "b")]);
        assert_eq!(d.to_string(), "f:2:1: error: a\nf:2:1: error: b");
    }

    #[test]
    fn renders_nothing_without_items() {
        assert_eq!(Diagnostics::new("f", Vec::new()).to_string(), "");
    }

    #[test]
    fn diagnostic_displays_its_position() {
        assert_eq!(Diagnostic::at(Span::new(4, 7), "bad").to_string(), "4:7: bad");
        assert_eq!(Diagnostic::new("bad").to_string(), "bad");
    }
}
