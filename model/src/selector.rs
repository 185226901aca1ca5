//! Label selectors in the Kubernetes syntax (`role=log,provider in (aws,dc),!retired`),
//! parsed once so that a malformed one is refused with a clear message before anything is
//! read, and matched locally where the API server cannot select (the log, past states).

use std::collections::{BTreeMap, BTreeSet};

use kube::core::{Expression, Selector, SelectorExt};

/// A parsed label selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    text: String,
    selector: Selector,
    keys: BTreeSet<String>,
}

/// What is wrong with a selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed label selector {text:?}: {reason}")]
pub struct SelectorError {
    /// The selector as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl LabelSelector {
    /// Parses `text`. An empty selector selects everything.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let fail = |reason: String| SelectorError {
            text: text.to_owned(),
            reason,
        };
        let mut expressions = Vec::new();
        let mut keys = BTreeSet::new();
        for requirement in split_requirements(text).map_err(&fail)? {
            let (key, expression) = parse_requirement(requirement.trim()).map_err(&fail)?;
            keys.insert(key);
            expressions.push(expression);
        }
        Ok(LabelSelector {
            text: text.trim().to_owned(),
            selector: expressions.into_iter().collect(),
            keys,
        })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.matches(labels)
    }

    /// The label keys its requirements name.
    pub fn keys(&self) -> &BTreeSet<String> {
        &self.keys
    }

    /// Whether it selects everything.
    pub fn is_empty(&self) -> bool {
        self.selector.selects_all()
    }

    /// The selector as the API server takes it.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Splits at commas outside parentheses.
fn split_requirements(text: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err("nested parentheses".into()),
            ')' if depth == 1 => depth = 0,
            ')' => return Err("a ')' without its '('".into()),
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a '(' without its ')'".into());
    }
    out.push(&text[start..]);
    if out.len() == 1 && out[0].trim().is_empty() {
        return Ok(Vec::new());
    }
    if out.iter().any(|r| r.trim().is_empty()) {
        return Err("an empty requirement (two commas in a row, or a trailing comma)".into());
    }
    Ok(out)
}

/// A requirement's key and its expression.
fn parse_requirement(r: &str) -> Result<(String, Expression), String> {
    let expression = requirement(r)?;
    let key = match &expression {
        Expression::In(k, _)
        | Expression::NotIn(k, _)
        | Expression::Equal(k, _)
        | Expression::NotEqual(k, _)
        | Expression::Exists(k)
        | Expression::DoesNotExist(k) => k.clone(),
    };
    Ok((key, expression))
}

fn requirement(r: &str) -> Result<Expression, String> {
    if let Some(key) = r.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(key_of(key.trim())?));
    }
    for (op, set) in [(" notin ", false), (" in ", true)] {
        if let Some((key, values)) = r.split_once(op) {
            let values = values.trim();
            let inner = values
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| format!("{r:?}: the values of '{}' go in parentheses", op.trim()))?;
            let values: BTreeSet<String> = inner
                .split(',')
                .map(|v| value_of(v.trim()))
                .collect::<Result<_, _>>()?;
            let key = key_of(key.trim())?;
            return Ok(if set {
                Expression::In(key, values)
            } else {
                Expression::NotIn(key, values)
            });
        }
    }
    if let Some((key, value)) = r.split_once("!=") {
        return Ok(Expression::NotEqual(
            key_of(key.trim())?,
            value_of(value.trim())?,
        ));
    }
    if let Some((key, value)) = r.split_once('=') {
        let value = value.strip_prefix('=').unwrap_or(value);
        return Ok(Expression::Equal(
            key_of(key.trim())?,
            value_of(value.trim())?,
        ));
    }
    if r.contains(['(', ')', ' ', '<', '>']) {
        return Err(format!(
            "{r:?} is not a requirement (key, !key, key=value, key!=value, key in (a,b), key notin (a,b))"
        ));
    }
    Ok(Expression::Exists(key_of(r)?))
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn key_of(key: &str) -> Result<String, String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    if !prefix_ok || !is_name(name) {
        return Err(format!(
            "{key:?} is not a label key (an optional DNS prefix and '/', then up to 63 letters, digits, '-', '_' or '.')"
        ));
    }
    Ok(key.to_owned())
}

fn value_of(value: &str) -> Result<String, String> {
    if !value.is_empty() && !is_name(value) {
        return Err(format!(
            "{value:?} is not a label value (up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn selects_like_the_api_server() {
        let host = labels(&[("role", "log"), ("provider", "aws"), ("phase", "InService")]);
        let cases = [
            ("", true),
            ("role=log", true),
            ("role==log", true),
            ("role=db", false),
            ("role!=db", true),
            ("role=log,provider=aws", true),
            ("role=log,provider=dc", false),
            ("provider in (aws,dc)", true),
            ("provider notin (aws,dc)", false),
            ("team", false),
            ("!team", true),
            ("role", true),
            ("hostledger.dev/pinned", false),
            (" role = log , provider in ( aws ) ", true),
        ];
        for (text, expected) in cases {
            let s = LabelSelector::parse(text).expect(text);
            assert_eq!(s.matches(&host), expected, "{text:?}");
        }
    }

    #[test]
    fn names_the_keys_it_selects_on() {
        let s = LabelSelector::parse("role=log, !team,provider in (aws,dc),rack!=r1,zone")
            .expect("parses");
        let keys: Vec<&str> = s.keys().iter().map(String::as_str).collect();
        assert_eq!(keys, ["provider", "rack", "role", "team", "zone"]);
        assert!(LabelSelector::default().keys().is_empty());
    }

    #[test]
    fn malformed_selectors_say_what_is_wrong() {
        let cases = [
            ("role=log,", "empty requirement"),
            ("role in (a,b", "without its ')'"),
            ("role in a,b", "parentheses"),
            ("role=bad value", "not a label value"),
            ("-role=x", "not a label key"),
            ("role >= 3", "not a label"),
            ("a b", "not a requirement"),
        ];
        for (text, expected) in cases {
            let e = LabelSelector::parse(text).expect_err(text);
            let message = e.to_string();
            assert!(message.contains(expected), "{text:?}: {message}");
            assert!(message.starts_with("malformed label selector"), "{message}");
        }
    }
}
