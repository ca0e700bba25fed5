//! Reads a wheel's `*.dist-info/METADATA` and turns it into the form fields of the
//! package upload API, as twine sends them, so the index records the metadata of the
//! file actually uploaded rather than a second reading of pyproject.toml.

use std::io::Read as _;

use anyhow::{Context as _, Result, bail};

/// The core metadata of a wheel: headers in file order, and the description (the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelMetadata {
    pub headers: Vec<(String, String)>,
    pub description: String,
}

impl WheelMetadata {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    pub fn name(&self) -> Result<&str> {
        self.get("Name").context("the wheel's METADATA has no Name")
    }

    pub fn version(&self) -> Result<&str> {
        self.get("Version").context("the wheel's METADATA has no Version")
    }

    /// The upload form fields for this metadata: header names lowercased with `-` as
    /// `_`, the repeatable ones under twine's plural names, the body as `description`.
    pub fn form_fields(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (k, v) in &self.headers {
            let key = match k.to_ascii_lowercase().as_str() {
                "classifier" => "classifiers".to_owned(),
                "project-url" => "project_urls".to_owned(),
                "metadata-version" => "metadata_version".to_owned(),
                other => other.replace('-', "_"),
            };
            out.push((key, v.clone()));
        }
        if !self.description.trim().is_empty() {
            out.push(("description".into(), self.description.clone()));
        }
        out
    }
}

/// Reads METADATA from the wheel file's bytes.
pub fn read(wheel: &[u8]) -> Result<WheelMetadata> {
    let text = zip_entry(wheel, |name| {
        let mut parts = name.split('/');
        matches!((parts.next(), parts.next(), parts.next()), (Some(dir), Some("METADATA"), None) if dir.ends_with(".dist-info"))
    })?;
    parse(&String::from_utf8_lossy(&text))
}

/// RFC 822-style headers, then a blank line, then the description.
pub fn parse(text: &str) -> Result<WheelMetadata> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut lines = text.split('\n');
    for line in lines.by_ref() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            // A continuation of the previous header (old-style multi-line Description).
            if let Some((_, v)) = headers.last_mut() {
                v.push('\n');
                v.push_str(line.trim_start());
            }
            continue;
        }
        let Some((k, v)) = line.split_once(':') else { bail!("the wheel's METADATA has a malformed line: {line}") };
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let description = lines.collect::<Vec<_>>().join("\n");
    Ok(WheelMetadata { headers, description })
}

fn u16_at(b: &[u8], at: usize) -> Result<usize> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]) as usize).context("the wheel is not a valid zip file (truncated)")
}

fn u32_at(b: &[u8], at: usize) -> Result<usize> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize).context("the wheel is not a valid zip file (truncated)")
}

/// The contents of the first zip entry whose name matches, read through the central
/// directory (stored or deflated entries; wheels use nothing else).
fn zip_entry(zip: &[u8], wanted: impl Fn(&str) -> bool) -> Result<Vec<u8>> {
    const EOCD: u32 = 0x0605_4b50;
    const CENTRAL: u32 = 0x0201_4b50;
    const LOCAL: u32 = 0x0403_4b50;
    // The end-of-central-directory record is in the last 22 + 65535 bytes.
    let search_from = zip.len().saturating_sub(22 + 65_535);
    let eocd = (search_from..zip.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(zip, i).ok() == Some(EOCD as usize))
        .context("the wheel is not a valid zip file (no end of central directory)")?;
    let entries = u16_at(zip, eocd + 10)?;
    let mut at = u32_at(zip, eocd + 16)?;
    for _ in 0..entries {
        if u32_at(zip, at)? != CENTRAL as usize {
            bail!("the wheel is not a valid zip file (bad central directory)");
        }
        let method = u16_at(zip, at + 10)?;
        let compressed = u32_at(zip, at + 20)?;
        let name_len = u16_at(zip, at + 28)?;
        let extra_len = u16_at(zip, at + 30)?;
        let comment_len = u16_at(zip, at + 32)?;
        let local = u32_at(zip, at + 42)?;
        let name = String::from_utf8_lossy(zip.get(at + 46..at + 46 + name_len).context("the wheel is not a valid zip file")?).into_owned();
        at += 46 + name_len + extra_len + comment_len;
        if !wanted(&name) {
            continue;
        }
        if u32_at(zip, local)? != LOCAL as usize {
            bail!("the wheel is not a valid zip file (bad local header for {name})");
        }
        let start = local + 30 + u16_at(zip, local + 26)? + u16_at(zip, local + 28)?;
        let data = zip.get(start..start + compressed).context("the wheel is not a valid zip file (entry out of range)")?;
        return match method {
            0 => Ok(data.to_vec()),
            8 => {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(data).read_to_end(&mut out).with_context(|| format!("cannot inflate {name} in the wheel"))?;
                Ok(out)
            }
            m => bail!("{name} in the wheel uses zip compression method {m}, which is not supported"),
        };
    }
    bail!("the wheel has no .dist-info/METADATA")
}

#[cfg(test)]
mod tests {
    use super::*;

    const METADATA: &str = "Metadata-Version: 2.4\nName: tradai-strategy\nVersion: 0.1.0\nSummary: Strategies\nClassifier: A :: B\nClassifier: C :: D\nRequires-Dist: tradai-common>=0.1.0\nRequires-Python: >=3.11\nDescription-Content-Type: text/markdown\n\n# tradai-strategy\n\nBody.\n";

    /// A zip with one stored entry and one deflated entry, built by hand.
    fn zip_with(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
        use std::io::Write as _;
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, content, deflate) in entries {
            let data = if *deflate {
                let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(content).unwrap();
                e.finish().unwrap()
            } else {
                content.to_vec()
            };
            let method: u16 = if *deflate { 8 } else { 0 };
            let offset = out.len() as u32;
            out.extend(0x0403_4b50u32.to_le_bytes());
            out.extend([20, 0, 0, 0]);
            out.extend(method.to_le_bytes());
            out.extend([0; 8]); // time, date, crc (not checked)
            out.extend((data.len() as u32).to_le_bytes());
            out.extend((content.len() as u32).to_le_bytes());
            out.extend((name.len() as u16).to_le_bytes());
            out.extend([0, 0]);
            out.extend(name.as_bytes());
            out.extend(&data);
            central.extend(0x0201_4b50u32.to_le_bytes());
            central.extend([20, 0, 20, 0, 0, 0]);
            central.extend(method.to_le_bytes());
            central.extend([0; 8]);
            central.extend((data.len() as u32).to_le_bytes());
            central.extend((content.len() as u32).to_le_bytes());
            central.extend((name.len() as u16).to_le_bytes());
            central.extend([0; 12]);
            central.extend(offset.to_le_bytes());
            central.extend(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend(&central);
        out.extend(0x0605_4b50u32.to_le_bytes());
        out.extend([0, 0, 0, 0]);
        out.extend((entries.len() as u16).to_le_bytes());
        out.extend((entries.len() as u16).to_le_bytes());
        out.extend((central.len() as u32).to_le_bytes());
        out.extend(cd_offset.to_le_bytes());
        out.extend([0, 0]);
        out
    }

    #[test]
    fn metadata_is_read_from_a_deflated_wheel() {
        let zip = zip_with(&[
            ("tradai_strategy/__init__.py", b"x = 1\n", false),
            ("tradai_strategy-0.1.0.dist-info/METADATA", METADATA.as_bytes(), true),
        ]);
        let m = read(&zip).unwrap();
        assert_eq!(m.name().unwrap(), "tradai-strategy");
        assert_eq!(m.version().unwrap(), "0.1.0");
        assert_eq!(m.description, "# tradai-strategy\n\nBody.\n");
        let fields = m.form_fields();
        assert!(fields.contains(&("metadata_version".into(), "2.4".into())));
        assert_eq!(fields.iter().filter(|(k, _)| k == "classifiers").count(), 2);
        assert!(fields.contains(&("requires_dist".into(), "tradai-common>=0.1.0".into())));
        assert!(fields.contains(&("requires_python".into(), ">=3.11".into())));
    }

    #[test]
    fn a_zip_without_metadata_or_not_a_zip_is_an_error() {
        let zip = zip_with(&[("a.txt", b"a", false)]);
        assert!(read(&zip).unwrap_err().to_string().contains("no .dist-info/METADATA"));
        assert!(read(b"not a zip at all, just text").unwrap_err().to_string().contains("not a valid zip"));
    }
}
