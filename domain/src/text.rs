//! Validated text types shared across areas. Each constructor is the only way in, so code past
//! the edge never re-checks.

use std::fmt;

/// Why a value was refused; the API adds which field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

impl InvalidInput {
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// Trims `value` and checks it holds between `min` and `max` characters and no control
/// characters.
pub fn bounded(value: &str, min: usize, max: usize) -> Result<String, InvalidInput> {
    let trimmed = value.trim();
    let length = trimmed.chars().count();
    if length < min {
        return Err(if min == 1 {
            InvalidInput::new("must not be empty")
        } else {
            InvalidInput::new(format!("must be at least {min} characters"))
        });
    }
    if length > max {
        return Err(InvalidInput::new(format!(
            "must be at most {max} characters (it has {length})"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(InvalidInput::new("must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

/// Like [`bounded`], for text that may run over several lines: line breaks and tabs are kept.
pub fn bounded_multiline(value: &str, min: usize, max: usize) -> Result<String, InvalidInput> {
    let flattened: String = value
        .chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .collect();
    bounded(&flattened, min, max)?;
    Ok(value.trim().to_owned())
}

/// A URL-safe identifier: lowercase letters, digits and single hyphens, 2 to 80 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    pub const MAX: usize = 80;

    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let value = value.trim();
        let valid_chars = value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if value.len() < 2 || value.len() > Self::MAX {
            return Err(InvalidInput::new(format!(
                "must be between 2 and {} characters",
                Self::MAX
            )));
        }
        if !valid_chars || value.starts_with('-') || value.ends_with('-') || value.contains("--") {
            return Err(InvalidInput::new(
                "may hold only lowercase letters, digits and single hyphens between them",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// Derives a slug from a name ("Leeds Carers' Forum" becomes "leeds-carers-forum").
    pub fn from_name(name: &str) -> Result<Self, InvalidInput> {
        let mut slug = slug::slugify(name);
        slug.truncate(Self::MAX);
        Self::parse(slug.trim_end_matches('-'))
            .map_err(|_| InvalidInput::new("gives no usable slug; choose one"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute http(s) URL of reasonable length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebUrl(String);

impl WebUrl {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let value = value.trim();
        if value.len() > 2048 {
            return Err(InvalidInput::new("must be at most 2048 characters"));
        }
        let url = url::Url::parse(value).map_err(|_| {
            InvalidInput::new("must be a full web address, like https://example.org")
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(InvalidInput::new("must start with http:// or https://"));
        }
        Ok(Self(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A normalised email address: trimmed, lowercased, and valid by RFC 5322's address syntax
/// with a dotted domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let value = value.trim().to_lowercase();
        if value.is_empty() {
            return Err(InvalidInput::new("must not be empty"));
        }
        if value.len() > 254 {
            return Err(InvalidInput::new("must be at most 254 characters"));
        }
        let parsed = email_address::EmailAddress::parse_with_options(
            &value,
            email_address::Options::default().without_display_text(),
        )
        .map_err(|_| InvalidInput::new("is not an email address, like name@example.org"))?;
        if !parsed.domain().contains('.') || parsed.domain().starts_with('[') {
            return Err(InvalidInput::new(
                "is not an email address, like name@example.org",
            ));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_trimmed_and_lowercased() {
        let email = EmailAddress::parse("  Ada.Lovelace@Example.ORG ").map(|e| e.0);
        assert_eq!(email, Ok("ada.lovelace@example.org".to_owned()));
    }

    #[test]
    fn malformed_email_addresses_are_refused() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@localhost",
            "a b@example.org",
            "Ada <ada@example.org>",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("{}@example.org", "a".repeat(250));
        assert!(EmailAddress::parse(&long).is_err());
    }

    #[test]
    fn slug_from_name_drops_punctuation_and_accents() {
        let slug = Slug::from_name("  Leeds Carers' Forum — Café ").map(|s| s.0);
        assert_eq!(slug, Ok("leeds-carers-forum-cafe".to_owned()));
    }

    #[test]
    fn slug_refuses_uppercase_and_double_hyphens() {
        assert!(Slug::parse("Leeds").is_err());
        assert!(Slug::parse("a--b").is_err());
        assert!(Slug::parse("-ab").is_err());
        assert!(Slug::parse("ab").is_ok());
    }

    #[test]
    fn bounded_trims_and_counts_characters_not_bytes() {
        assert_eq!(bounded("  Zoë  ", 1, 3), Ok("Zoë".to_owned()));
        assert!(bounded("   ", 1, 3).is_err());
        assert!(bounded("abcd", 1, 3).is_err());
        assert!(bounded("a\u{0}b", 1, 3).is_err());
    }

    #[test]
    fn web_url_accepts_only_http_and_https() {
        assert!(WebUrl::parse("https://example.org/x").is_ok());
        assert!(WebUrl::parse("javascript:alert(1)").is_err());
        assert!(WebUrl::parse("ftp://example.org").is_err());
        assert!(WebUrl::parse("example.org").is_err());
    }
}
