//! A forgiving `multipart/*` body splitter for Hikvision HTTP push.
//!
//! Face terminals (the DS-K1T671 and its siblings) in "HTTP listening" mode POST
//! `multipart/form-data` with a JSON part named `AccessControllerEvent` (some firmware:
//! `event_log`) followed by a `Picture` JPEG part; on `alertStream` the same arrives as
//! `multipart/mixed`. Bodies are sometimes cut off mid-image, so a part that never reaches its
//! closing boundary is returned with `complete: false` instead of failing the whole body.

use memchr::memmem;
use xl_core::gate::AdapterError;

use crate::NAME;

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// `name` from `Content-Disposition`.
    pub name: Option<&'a str>,
    /// `filename` from `Content-Disposition`.
    pub filename: Option<&'a str>,
    /// The part's `Content-Type`.
    pub content_type: Option<&'a str>,
    /// The part's `Content-Length`, when sent.
    pub content_length: Option<usize>,
    /// The body, without the CRLF before the next boundary.
    pub body: &'a [u8],
    /// Offset of the body in the whole multipart body.
    pub body_offset: usize,
    /// False when the body ended before this part's closing boundary (and before its
    /// `Content-Length`, when one was sent).
    pub complete: bool,
}

/// The longest boundary RFC 2046 allows.
const MAX_BOUNDARY_LEN: usize = 70;

/// The boundary from the body's first line (`--MIME_boundary`), for bodies that arrive without
/// their `Content-Type` (a file on disk, an MQTT bridge).
pub fn sniff_boundary(body: &[u8]) -> Option<&str> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    let line = &body[start..];
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let boundary = std::str::from_utf8(line.strip_prefix(b"--")?)
        .ok()?
        .trim_end();
    (!boundary.is_empty() && boundary.len() <= MAX_BOUNDARY_LEN).then_some(boundary)
}

/// Splits `body` on `boundary` (without the leading `--`).
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, AdapterError> {
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY_LEN {
        return Err(AdapterError::new(
            NAME,
            format!(
                "multipart boundary must be 1 to {MAX_BOUNDARY_LEN} characters, got {}",
                boundary.len()
            ),
        ));
    }
    let delimiter = format!("--{boundary}");
    let finder = memmem::Finder::new(delimiter.as_bytes());
    let Some(first) = finder.find(body) else {
        return Err(
            AdapterError::new(NAME, format!("multipart boundary {delimiter:?} not found"))
                .at_byte(body, 0),
        );
    };
    let mut parts = Vec::new();
    let mut pos = first + delimiter.len();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") || rest.iter().all(u8::is_ascii_whitespace) {
            break; // Closing delimiter, or the body ends right after a delimiter.
        }
        // The rest of the delimiter line (transport padding, then CRLF).
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            break;
        };
        let headers_start = pos + nl + 1;
        let (headers, body_start) = match header_block(&body[headers_start..]) {
            Some((len, sep)) => (
                &body[headers_start..headers_start + len],
                headers_start + len + sep,
            ),
            None => {
                // Cut off inside the headers: nothing usable in this part.
                break;
            }
        };
        let headers = std::str::from_utf8(headers).map_err(|e| {
            AdapterError::new(NAME, "multipart part headers are not UTF-8")
                .at_byte(body, headers_start + e.valid_up_to())
        })?;
        let mut part = Part {
            name: None,
            filename: None,
            content_type: None,
            content_length: None,
            body: &[],
            body_offset: body_start,
            complete: false,
        };
        read_headers(headers, &mut part);
        let after = &body[body_start..];
        match finder.find(after) {
            Some(end) => {
                let mut content = &after[..end];
                content = content.strip_suffix(b"\n").unwrap_or(content);
                content = content.strip_suffix(b"\r").unwrap_or(content);
                part.body = content;
                part.complete = true;
                parts.push(part);
                pos = body_start + end + delimiter.len();
            }
            None => {
                let content = trim_trailing_newline(after);
                part.complete = part.content_length.is_some_and(|n| content.len() >= n);
                part.body = match part.content_length {
                    Some(n) if part.complete => &content[..n],
                    _ => content,
                };
                parts.push(part);
                break;
            }
        }
    }
    Ok(parts)
}

fn trim_trailing_newline(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// Length of the header block and of the blank-line separator after it.
fn header_block(b: &[u8]) -> Option<(usize, usize)> {
    // A part with no headers starts with the blank line at once.
    if b.starts_with(b"\r\n") {
        return Some((0, 2));
    }
    if b.starts_with(b"\n") {
        return Some((0, 1));
    }
    let crlf = memmem::find(b, b"\r\n\r\n").map(|i| (i, 4));
    let lf = memmem::find(b, b"\n\n").map(|i| (i, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn read_headers<'a>(headers: &'a str, part: &mut Part<'a>) {
    for line in headers.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-disposition") {
            for param in value.split(';').skip(1) {
                let Some((k, v)) = param.split_once('=') else {
                    continue;
                };
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                match k.trim().to_ascii_lowercase().as_str() {
                    "name" => part.name = Some(v),
                    "filename" => part.filename = Some(v),
                    _ => {}
                }
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            part.content_type = Some(value);
        } else if name.eq_ignore_ascii_case("content-length") {
            part.content_length = value.parse().ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"--MIME_boundary\r\n\
Content-Disposition: form-data; name=\"AccessControllerEvent\"\r\n\
Content-Type: application/json\r\n\
Content-Length: 7\r\n\
\r\n\
{\"a\":1}\r\n\
--MIME_boundary\r\n\
Content-Disposition: form-data; name=\"Picture\"; filename=\"Picture.jpg\"\r\n\
Content-Type: image/jpeg\r\n\
\r\n\
\xff\xd8\xff\xe0JPEG\xff\xd9\r\n\
--MIME_boundary--\r\n";

    #[test]
    fn splits_json_and_picture() {
        let parts = parse(BODY, "MIME_boundary").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, Some("AccessControllerEvent"));
        assert_eq!(parts[0].content_type, Some("application/json"));
        assert_eq!(parts[0].content_length, Some(7));
        assert_eq!(parts[0].body, b"{\"a\":1}");
        assert!(parts[0].complete);
        assert_eq!(parts[1].name, Some("Picture"));
        assert_eq!(parts[1].filename, Some("Picture.jpg"));
        assert_eq!(parts[1].body, b"\xff\xd8\xff\xe0JPEG\xff\xd9");
        assert!(parts[1].complete);
    }

    #[test]
    fn a_body_cut_mid_image_keeps_the_json_part() {
        let cut = &BODY[..memmem::find(BODY, b"JPEG").unwrap() + 2];
        let parts = parse(cut, "MIME_boundary").unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts[0].complete);
        assert!(!parts[1].complete);
        assert!(parts[1].body.starts_with(b"\xff\xd8"));
    }

    #[test]
    fn a_body_cut_mid_json_marks_it_incomplete() {
        let cut = &BODY[..memmem::find(BODY, b"{\"a\"").unwrap() + 3];
        let parts = parse(cut, "MIME_boundary").unwrap();
        assert_eq!(parts.len(), 1);
        assert!(!parts[0].complete);
    }

    #[test]
    fn bare_lf_bodies_and_sniffing() {
        let body = b"\n--b\nContent-Type: application/json\n\n{}\n--b--\n";
        assert_eq!(sniff_boundary(body), Some("b"));
        let parts = parse(body, "b").unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].body, b"{}");
        assert_eq!(sniff_boundary(b"{\"a\":1}"), None);
    }

    #[test]
    fn missing_boundary_is_an_error() {
        let e = parse(BODY, "other").unwrap_err();
        assert!(e.to_string().contains("\"--other\" not found"), "{e}");
        assert!(parse(BODY, "").is_err());
    }
}
