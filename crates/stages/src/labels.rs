//! Channel labels: the `labels` parameter every source takes, and its default.
//!
//! A label names a channel in the stream metadata, the API, the CSV header and the BDF/EDF
//! signal headers, so it must fit all of them: 1 to 16 printable ASCII characters (the EDF
//! label field), no comma or quote (a CSV header cell), and no two alike.
use pipeline::stage::ParamError;

/// The 10-20 names of the first eight channels.
pub const TEN_TWENTY: [&str; 8] = ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"];

/// Longest label: the EDF/BDF signal label field.
pub const MAX_LABEL: usize = 16;

/// The default labels of `n` channels: Fp1 Fp2 C3 C4 P7 P8 O1 O2, then Ch9, Ch10, …
pub fn default_labels(n: usize) -> Vec<String> {
    (0..n).map(|i| TEN_TWENTY.get(i).map_or_else(|| format!("Ch{}", i + 1), |s| s.to_string())).collect()
}

/// A source's labels: `given` (one per channel, checked), or the defaults when it is empty.
pub fn labels(given: &[String], channels: usize) -> Result<Vec<String>, ParamError> {
    if given.is_empty() {
        return Ok(default_labels(channels));
    }
    if given.len() != channels {
        return Err(ParamError::new(
            "labels",
            format!("{} labels for {channels} channels: give one per channel", given.len()),
        ));
    }
    for (i, l) in given.iter().enumerate() {
        let printable = l.chars().all(|c| (' '..='~').contains(&c) && c != ',' && c != '"');
        if l.trim().is_empty() || l.len() > MAX_LABEL || !printable || l.trim() != l {
            return Err(ParamError::new(
                "labels",
                format!(
                    "label `{l}`: 1 to {MAX_LABEL} printable ASCII characters, no comma, quote or \
                     surrounding spaces (it names the channel in CSV and BDF/EDF headers)"
                ),
            ));
        }
        if given[..i].contains(l) {
            return Err(ParamError::new("labels", format!("label `{l}` is given twice")));
        }
    }
    Ok(given.to_vec())
}

/// A source's labels: `given` (checked) or, when it is empty, `own` (a file's labels).
pub fn labels_or(given: &[String], own: Vec<String>) -> Result<Vec<String>, ParamError> {
    if given.is_empty() {
        Ok(own)
    } else {
        labels(given, own.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_ten_twenty_then_numbered() {
        assert_eq!(default_labels(3), ["Fp1", "Fp2", "C3"]);
        let l = default_labels(10);
        assert_eq!((l[7].as_str(), l[8].as_str(), l[9].as_str()), ("O2", "Ch9", "Ch10"));
    }

    #[test]
    fn given_labels_are_checked() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(labels(&v(&["Cz", "Pz"]), 2).unwrap(), ["Cz", "Pz"]);
        assert!(labels(&v(&["Cz"]), 2).unwrap_err().message.contains("1 labels for 2"));
        assert!(labels(&v(&["Cz", "Cz"]), 2).unwrap_err().message.contains("twice"));
        assert!(labels(&v(&["a,b", "c"]), 2).is_err());
        assert!(labels(&v(&["", "c"]), 2).is_err());
        assert!(labels(&v(&["seventeen chars!!", "c"]), 2).is_err());
    }
}
