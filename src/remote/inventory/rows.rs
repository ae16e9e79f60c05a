//! The rows of an inventory's CSV data files, as the objects under the target prefix.
//!
//! The manifest's `fileSchema` names the columns in order; only `Key`, `Size` and
//! `LastModifiedDate` are needed, and `ETag` is kept when present for the content check. AWS
//! quotes every field and URL-encodes keys (a space as `+`), so a key holding a comma or a quote
//! still parses; the `csv` crate reads the quoting. A row is kept only when it is the current
//! version of a key of the target's bucket under the target's prefix: an inventory of the whole
//! bucket lists other sites too, and one that includes versions lists old versions and delete
//! markers, which are not objects a GET would return.

use std::io::Read;

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;

use super::InventoryError;
use crate::keys::target::Target;
use crate::model::{RemoteObject, Time};
use crate::remote::{decode_key, to_time};

/// Where the columns the diff needs are, in a row of the data files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    bucket: Option<usize>,
    key: usize,
    size: usize,
    last_modified: usize,
    etag: Option<usize>,
    is_latest: Option<usize>,
    is_delete_marker: Option<usize>,
}

impl Columns {
    /// Reads `fileSchema` (`Bucket, Key, Size, LastModifiedDate, ETag, ...`).
    pub fn parse(schema: &str) -> Result<Columns, InventoryError> {
        let names: Vec<&str> = schema.split(',').map(str::trim).collect();
        let find = |name: &str| names.iter().position(|n| *n == name);
        let need = |column: &'static str| {
            find(column).ok_or_else(|| InventoryError::Schema { schema: schema.to_owned(), column })
        };
        Ok(Columns {
            bucket: find("Bucket"),
            key: need("Key")?,
            size: need("Size")?,
            last_modified: need("LastModifiedDate")?,
            etag: find("ETag"),
            is_latest: find("IsLatest"),
            is_delete_marker: find("IsDeleteMarker"),
        })
    }

    /// The object a row stands for, relative to the prefix; `None` for a row that is not an
    /// object under the target (another bucket, outside the prefix, the prefix's own folder
    /// marker, an old version or a delete marker).
    pub fn object(&self, row: &csv::StringRecord, target: &Target) -> Result<Option<RemoteObject>, String> {
        let field = |i: usize| row.get(i).ok_or_else(|| format!("{} fields, too few for the fileSchema", row.len()));
        if let Some(i) = self.bucket
            && field(i)? != target.bucket
        {
            return Ok(None);
        }
        let is = |column: Option<usize>, value: &str| column.and_then(|i| row.get(i)) == Some(value);
        if is(self.is_latest, "false") || is(self.is_delete_marker, "true") {
            return Ok(None);
        }
        let key = decode_key(field(self.key)?);
        let relative = match key.strip_prefix(target.prefix.as_str()) {
            Some(relative) if !relative.is_empty() => relative,
            _ => return Ok(None),
        };
        let size = field(self.size)?;
        let size = size.parse().map_err(|_| format!("Size {size:?} is not a number of bytes"))?;
        let last_modified = parse_time(field(self.last_modified)?)?;
        let etag = match self.etag {
            Some(i) => Some(field(i)?.trim_matches('"')).filter(|e| !e.is_empty()).map(str::to_owned),
            None => None,
        };
        Ok(Some(RemoteObject { key: relative.to_owned(), size, last_modified, etag }))
    }
}

/// `LastModifiedDate`: ISO 8601 in UTC, with milliseconds (`2024-01-02T03:04:05.000Z`).
pub fn parse_time(text: &str) -> Result<Time, String> {
    DateTime::from_str(text, Format::DateTime)
        .map(|t| to_time(&t))
        .map_err(|e| format!("LastModifiedDate {text:?} is not an ISO 8601 date in UTC: {e}"))
}

/// Reads the rows of one data file (already decompressed) and hands each object under the target
/// to `keep`; returns how many rows it read.
pub fn read(
    data: impl Read,
    columns: &Columns,
    target: &Target,
    mut keep: impl FnMut(RemoteObject) -> Result<(), InventoryError>,
) -> Result<u64, InventoryError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(data);
    let mut row = csv::StringRecord::new();
    let mut rows = 0;
    while reader.read_record(&mut row).map_err(InventoryError::Csv)? {
        rows += 1;
        if let Some(object) = columns.object(&row, target).map_err(|why| InventoryError::Row { row: rows, why })? {
            keep(object)?;
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass";

    fn target() -> Target {
        Target::parse("s3://bkt/site").unwrap()
    }

    fn objects(csv: &str, schema: &str) -> Result<Vec<RemoteObject>, InventoryError> {
        let columns = Columns::parse(schema)?;
        let mut kept = Vec::new();
        read(csv.as_bytes(), &columns, &target(), |o| {
            kept.push(o);
            Ok(())
        })?;
        Ok(kept)
    }

    #[test]
    fn quoted_fields_with_commas_quotes_and_encoded_keys() {
        let csv = concat!(
            "\"bkt\",\"site/a+b%2Bc%25.txt\",\"12\",\"2024-01-02T03:04:05.000Z\",\"\"\"0123abcd\"\"\",\"STANDARD\"\n",
            // A key left with a raw comma and quote still reads as one field.
            "\"bkt\",\"site/x,\"\"y\"\".html\",\"0\",\"2024-01-02T03:04:05.123Z\",\"ffff\",\"GLACIER\"\r\n",
            "bkt,site/%E6%97%A5%E6%9C%AC/%C3%A9.html,7,2024-02-29T23:59:59.999Z,,STANDARD\n",
        );
        let got = objects(csv, SCHEMA).unwrap();
        let secs = 1_704_164_645 * Time::NANOS_PER_SEC;
        let expected = [
            RemoteObject {
                key: "a b+c%.txt".into(),
                size: 12,
                last_modified: Time(secs),
                etag: Some("0123abcd".into()),
            },
            RemoteObject {
                key: "x,\"y\".html".into(),
                size: 0,
                last_modified: Time(secs + 123_000_000),
                etag: Some("ffff".into()),
            },
            RemoteObject {
                key: "日本/é.html".into(),
                size: 7,
                last_modified: Time(1_709_251_199_999_000_000),
                etag: None,
            },
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn only_current_objects_of_the_target_are_kept() {
        let schema = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate";
        let date = "2024-01-02T03:04:05.000Z";
        let csv = [
            format!("bkt,site/keep,v1,true,false,1,{date}"),
            format!("bkt,site/old,v0,false,false,1,{date}"),
            format!("bkt,site/gone,v2,true,true,,{date}"),
            format!("other,site/theirs,v1,true,false,1,{date}"),
            format!("bkt,site2/x,v1,true,false,1,{date}"),
            format!("bkt,sitea.txt,v1,true,false,1,{date}"),
            format!("bkt,site/,v1,true,false,0,{date}"),
            format!("bkt,site,v1,true,false,0,{date}"),
        ]
        .join("\n");
        let keys: Vec<String> = objects(&csv, schema).unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["keep"]);
    }

    #[test]
    fn the_schema_names_the_columns() {
        // Columns in another order, without Bucket or ETag.
        let got = objects("\"2024-01-02T03:04:05Z\",\"3\",\"site/k\"\n", "LastModifiedDate,Size,Key").unwrap();
        assert_eq!(got[0].key, "k");
        assert_eq!(got[0].size, 3);
        assert_eq!(got[0].etag, None);
        for (schema, column) in [("Bucket, Key, LastModifiedDate", "Size"), ("Bucket, Size, LastModifiedDate", "Key")] {
            let error = Columns::parse(schema).unwrap_err().to_string();
            assert!(error.contains(column) && error.contains(schema), "{error}");
        }
    }

    #[test]
    fn a_bad_row_names_its_number_and_field() {
        let csv = "bkt,site/a,1,2024-01-02T03:04:05.000Z,e,S\nbkt,site/b,12kB,2024-01-02T03:04:05.000Z,e,S\n";
        let error = objects(csv, SCHEMA).unwrap_err().to_string();
        assert!(error.contains("row 2") && error.contains("\"12kB\""), "{error}");
        let csv = "bkt,site/a,1,02/01/2024,e,S\n";
        let error = objects(csv, SCHEMA).unwrap_err().to_string();
        assert!(error.contains("row 1") && error.contains("02/01/2024"), "{error}");
        let error = objects("bkt,site/a,1\n", SCHEMA).unwrap_err().to_string();
        assert!(error.contains("3 fields"), "{error}");
    }

    #[test]
    fn dates_parse_to_nanoseconds() {
        assert_eq!(parse_time("1970-01-01T00:00:00.000Z").unwrap(), Time(0));
        assert_eq!(parse_time("2024-01-02T03:04:05.678Z").unwrap(), Time(1_704_164_645_678_000_000));
        assert_eq!(parse_time("2024-01-02T03:04:05Z").unwrap(), Time(1_704_164_645 * Time::NANOS_PER_SEC));
        for bad in ["", "2024-01-02", "2024-01-02T03:04:05.000+01:00", "2024-13-02T03:04:05.000Z", "yesterday"] {
            assert!(parse_time(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn keys_decode_as_aws_encodes_them() {
        // AWS encodes a space as `+`, so a literal `+` comes as `%2B` and `%` as `%25`.
        assert_eq!(decode_key("a+b%2Bc%25d"), "a b+c%d");
        assert_eq!(decode_key("%E6%97%A5%E6%9C%AC/caf%C3%A9+menu.html"), "日本/café menu.html");
        assert_eq!(decode_key("100%25%20sure"), "100% sure");
    }
}
