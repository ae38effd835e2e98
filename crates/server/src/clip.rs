//! Request-derived text (a path, a title id, a stream name, a timecode) that is echoed in an
//! answer or written to the log is clipped to [`MAX`] bytes, on a char boundary, with an
//! ellipsis: a 30 KB URI gets a short 404 and a short log line, not 30 KB of each.

use std::fmt;

/// Most bytes of request-derived text shown.
pub const MAX: usize = 200;

/// Displays at most [`MAX`] bytes of a string, then `…` when it was cut.
#[derive(Debug, Clone, Copy)]
pub struct Clip<'a>(pub &'a str);

impl fmt::Display for Clip<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s.len() <= MAX {
            return f.write_str(s);
        }
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}…", &s[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_shown_whole_and_long_text_is_cut_on_a_char_boundary() {
        assert_eq!(Clip("show").to_string(), "show");
        let exact = "a".repeat(MAX);
        assert_eq!(Clip(&exact).to_string(), exact);
        let long = "a".repeat(30_000);
        assert_eq!(Clip(&long).to_string(), format!("{}…", "a".repeat(MAX)));
        // 'é' is two bytes: the cut falls inside one at byte MAX, so it moves back before it.
        let wide = format!("a{}", "é".repeat(200));
        let shown = Clip(&wide).to_string();
        assert_eq!(shown, format!("a{}…", "é".repeat((MAX - 1) / 2)));
        assert!(shown.len() <= MAX + '…'.len_utf8());
    }
}
