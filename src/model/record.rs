//! A [`LocalFile`] written to a temporary file and read back whole: the body (a path, a problem,
//! inline bytes, a compressed source), headers, the primary key of a copy and what the local
//! state knows of it. The sink's waiting pages and the diff's held entries spill with it; the
//! files are the run's own (unlinked, see `disk::anonymous_file`), so the layout has no version.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::Arc;

use crate::disk::{
    get_array, get_bytes, get_bytes_up_to, get_option, get_string, get_u64, put_bytes, put_option, put_u64,
};
use crate::model::{Body, Encoding, Known, LocalFile, ObjectMeta, Problem, Time};

pub fn put_file(out: &mut impl Write, f: &LocalFile) -> io::Result<()> {
    put_bytes(out, f.key.as_bytes())?;
    put_body(out, &f.body)?;
    put_u64(out, f.size)?;
    put_u64(out, f.mtime.0 as u64)?;
    let meta = f.meta.as_deref().map(|m| serde_json::to_vec(m).expect("headers serialise"));
    put_option(out, meta.as_deref())?;
    put_option(out, f.copy_of.as_deref().map(str::as_bytes))?;
    match f.known.as_deref() {
        None => out.write_all(&[0]),
        Some(known) => {
            out.write_all(&[1])?;
            put_known(out, known)
        }
    }
}

pub fn get_file(input: &mut impl Read) -> io::Result<LocalFile> {
    let key = get_string(input)?;
    let body = get_body(input)?;
    let size = get_u64(input)?;
    let mtime = Time(get_u64(input)? as i64);
    let meta = match get_option(input)? {
        Some(json) => Some(Box::new(serde_json::from_slice::<ObjectMeta>(&json).map_err(io::Error::other)?)),
        None => None,
    };
    let copy_of = get_option(input)?.map(String::from_utf8).transpose().map_err(io::Error::other)?;
    let known = match get_array::<1>(input)? {
        [0] => None,
        _ => Some(Box::new(get_known(input)?)),
    };
    Ok(LocalFile { key, body, size, mtime, meta, copy_of, known })
}

fn put_known(out: &mut impl Write, k: &Known) -> io::Result<()> {
    put_u64(out, k.size)?;
    put_u64(out, k.mtime.0 as u64)?;
    put_option(out, k.md5.as_ref().map(<[u8; 16]>::as_slice))?;
    put_option(out, k.etag.as_deref().map(str::as_bytes))?;
    put_u64(out, k.lm_lo.0 as u64)?;
    put_u64(out, k.lm_hi.0 as u64)
}

fn get_known(input: &mut impl Read) -> io::Result<Known> {
    let size = get_u64(input)?;
    let mtime = Time(get_u64(input)? as i64);
    let md5 = match get_option(input)? {
        Some(bytes) => Some(<[u8; 16]>::try_from(bytes.as_slice()).map_err(io::Error::other)?),
        None => None,
    };
    let etag = get_option(input)?.map(String::from_utf8).transpose().map_err(io::Error::other)?;
    let lm_lo = Time(get_u64(input)? as i64);
    let lm_hi = Time(get_u64(input)? as i64);
    Ok(Known { size, mtime, md5, etag, lm_lo, lm_hi })
}

fn put_body(out: &mut impl Write, body: &Body) -> io::Result<()> {
    match body {
        Body::File(path) => {
            out.write_all(&[0])?;
            put_bytes(out, path.as_os_str().as_bytes())
        }
        Body::Unreadable(problem) => {
            out.write_all(&[1])?;
            put_bytes(out, problem.place.as_bytes())?;
            put_bytes(out, problem.message.as_bytes())
        }
        Body::Inline(bytes) => {
            out.write_all(&[2])?;
            put_bytes(out, bytes)
        }
        Body::Compressed { path, encoding } => {
            out.write_all(&[3])?;
            put_bytes(out, path.as_os_str().as_bytes())?;
            put_bytes(out, encoding.token().as_bytes())
        }
    }
}

fn get_body(input: &mut impl Read) -> io::Result<Body> {
    let path = |input: &mut _| get_bytes(input).map(|b| PathBuf::from(OsString::from_vec(b)));
    match get_array::<1>(input)? {
        [0] => Ok(Body::File(path(input)?)),
        [1] => {
            let place = get_string(input)?;
            let message = get_string(input)?;
            Ok(Body::Unreadable(Arc::new(Problem::new(place, message))))
        }
        [2] => Ok(Body::Inline(get_bytes_up_to(input, crate::keys::target::MAX_PUT_BYTES)?.into())),
        [3] => {
            let path = path(input)?;
            let token = get_string(input)?;
            let encoding = Encoding::by_token(&token)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("an encoding {token:?}")))?;
            Ok(Body::Compressed { path, encoding })
        }
        [tag] => Err(io::Error::other(format!("a spilled entry has an unknown body tag {tag}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_comes_back_whole_with_what_the_state_knows() {
        let mut file =
            LocalFile::new("a/b é.html".into(), PathBuf::from(OsString::from_vec(vec![b'x', 0xe9])), 7, Time(-3));
        file.copy_of = Some("b".into());
        file.known = Some(Box::new(Known {
            size: 7,
            mtime: Time(5),
            md5: Some([9; 16]),
            etag: Some("abc".into()),
            lm_lo: Time(1),
            lm_hi: Time(2),
        }));
        let bare = LocalFile::inline("gen.html".into(), Arc::from(&b"<p>"[..]), Time(0));
        let mut bytes = Vec::new();
        put_file(&mut bytes, &file).unwrap();
        put_file(&mut bytes, &bare).unwrap();
        let mut input = bytes.as_slice();
        assert_eq!(get_file(&mut input).unwrap(), file);
        assert_eq!(get_file(&mut input).unwrap(), bare);
        assert!(input.is_empty());
    }
}
