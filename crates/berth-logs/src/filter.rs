//! Filter patterns for unstructured log events, as FilterLogEvents takes them:
//! space-separated terms that must all appear (`ERROR Exception`), quoted phrases
//! (`"Failed to process"`), alternatives (`?ERROR ?WARN`: at least one) and exclusions
//! (`ERROR -Exiting`). Matching is case-sensitive, as in CloudWatch Logs. JSON patterns
//! (`{ $.x = 1 }`), space-delimited patterns (`[ip, user, ...]`) and regular expressions
//! (`%...%`) are refused as not supported.

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pattern {
    all: Vec<String>,
    any: Vec<String>,
    none: Vec<String>,
}

impl Pattern {
    /// Parse a filter pattern; the error is the message for InvalidParameterException.
    pub fn parse(src: &str) -> Result<Pattern, String> {
        let s = src.trim();
        match s.chars().next() {
            Some('{') => {
                return Err(
                    "JSON filter patterns ({ $.field ... }) are not supported by Berth yet; use plain terms, \"quoted phrases\", ?alternatives and -exclusions."
                        .into(),
                )
            }
            Some('[') => {
                return Err(
                    "Space-delimited filter patterns ([field, ...]) are not supported by Berth yet; use plain terms, \"quoted phrases\", ?alternatives and -exclusions."
                        .into(),
                )
            }
            Some('%') => {
                return Err(
                    "Regular-expression filter patterns (%...%) are not supported by Berth yet; use plain terms, \"quoted phrases\", ?alternatives and -exclusions."
                        .into(),
                )
            }
            _ => {}
        }
        let mut p = Pattern::default();
        let mut chars = s.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let Some(&first) = chars.peek() else { break };
            let kind = match first {
                '?' | '-' => {
                    chars.next();
                    first
                }
                _ => ' ',
            };
            let mut term = String::new();
            let quoted = chars.peek() == Some(&'"');
            if quoted {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some(n) => term.push(n),
                            None => break,
                        },
                        c => term.push(c),
                    }
                }
                if !closed {
                    return Err(format!(
                        "Invalid filter pattern: unterminated quoted term in '{src}'."
                    ));
                }
                if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                    return Err(format!(
                        "Invalid filter pattern: a quoted term must be followed by a space in '{src}'."
                    ));
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    term.push(c);
                    chars.next();
                }
            }
            if term.is_empty() {
                if quoted {
                    // `""` is the pattern that matches every event.
                    continue;
                }
                return Err(format!("Invalid filter pattern: empty term in '{src}'."));
            }
            match kind {
                '?' => p.any.push(term),
                '-' => p.none.push(term),
                _ => p.all.push(term),
            }
        }
        Ok(p)
    }

    /// True for the empty pattern, which matches every event.
    pub fn matches_all(&self) -> bool {
        self.all.is_empty() && self.any.is_empty() && self.none.is_empty()
    }

    pub fn matches(&self, message: &str) -> bool {
        self.all.iter().all(|t| message.contains(t.as_str()))
            && (self.any.is_empty() || self.any.iter().any(|t| message.contains(t.as_str())))
            && !self.none.iter().any(|t| message.contains(t.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, msg: &str) -> bool {
        Pattern::parse(p).unwrap().matches(msg)
    }

    #[test]
    fn empty_matches_everything() {
        assert!(Pattern::parse("").unwrap().matches_all());
        assert!(Pattern::parse("   ").unwrap().matches_all());
        assert!(m("", "anything"));
        assert!(Pattern::parse("\"\"").unwrap().matches_all());
    }

    #[test]
    fn terms_must_all_appear_case_sensitively() {
        assert!(m("ERROR", "an ERROR happened"));
        assert!(!m("ERROR", "an error happened"));
        assert!(m("ERROR Exception", "ERROR: NullPointerException"));
        assert!(!m("ERROR Exception", "ERROR: timeout"));
    }

    #[test]
    fn quoted_phrases() {
        assert!(m("\"Failed to process\"", "job 7: Failed to process input"));
        assert!(!m("\"Failed to process\"", "Failed: to process"));
        assert!(m("\"say \\\"hi\\\"\"", "they say \"hi\" here"));
        assert!(m("\"ERROR:\" disk", "ERROR: disk full"));
    }

    #[test]
    fn alternatives_and_exclusions() {
        assert!(m("?ERROR ?WARN", "WARN low disk"));
        assert!(m("?ERROR ?WARN", "ERROR boom"));
        assert!(!m("?ERROR ?WARN", "INFO fine"));
        assert!(m("ERROR -Exiting", "ERROR retrying"));
        assert!(!m("ERROR -Exiting", "ERROR Exiting now"));
        assert!(m("-DEBUG", "INFO x"));
        assert!(!m("-DEBUG", "DEBUG x"));
        assert!(m("?\"disk full\" ?oom", "kernel: oom-killer"));
        assert!(m("user ?ERROR ?WARN -test", "user 1 WARN"));
        assert!(!m("user ?ERROR ?WARN -test", "user 1 WARN test"));
        assert!(!m("user ?ERROR ?WARN -test", "user 1 INFO"));
    }

    #[test]
    fn unsupported_and_malformed_patterns_are_refused() {
        for p in [
            "{ $.level = \"ERROR\" }",
            "[ip, user, status=404]",
            "%ERR.*%",
        ] {
            let e = Pattern::parse(p).unwrap_err();
            assert!(e.contains("not supported"), "{e}");
        }
        assert!(Pattern::parse("\"open").is_err());
        assert!(Pattern::parse("? x").is_err());
        assert!(Pattern::parse("\"a\"b").is_err());
    }
}
