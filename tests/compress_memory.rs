//! The compressor's memory does not grow with its input: a large file is compressed as it is read
//! into an unlinked temporary file (`compress::to_temp_file`, the path the upload takes for a file
//! too large to read whole), so compressing 8 times as much peaks at the same memory. (Measured:
//! gzip 0.5 MiB whatever the size; brotli grows to 20 MiB by 4 MiB of input and stays there.)
//!
//! This binary counts every allocation of the process (its own global allocator) and holds one
//! test only, so nothing else allocates while it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

use sitesync::content::compress::{self, Encoding};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// `len` bytes of text-like input made on the fly: words drawn from a small list, so it
/// compresses about as well as a stylesheet, and nothing is held in memory.
struct Words {
    left: usize,
    state: u64,
    word: &'static [u8],
}

const WORDS: [&[u8]; 8] =
    [b"color: ", b"#2a5d8f; ", b"margin: 0 auto; ", b".nav a ", b"{ ", b"}\n", b"font-family: sans-serif; ", b"12px "];

impl Read for Words {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() && self.left > 0 {
            if self.word.is_empty() {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                self.word = WORDS[(self.state % 8) as usize];
            }
            let take = self.word.len().min(buf.len() - n).min(self.left);
            buf[n..n + take].copy_from_slice(&self.word[..take]);
            self.word = &self.word[take..];
            (n, self.left) = (n + take, self.left - take);
        }
        Ok(n)
    }
}

/// The most memory held at once, above what was held before, while compressing `len` bytes.
fn peak_while_compressing(len: usize, encoding: Encoding) -> usize {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let input = Words { left: len, state: 0x9e37_79b9_7f4a_7c15, word: b"" };
    let spooled = compress::to_temp_file(input, encoding).expect("compressing into a temporary file");
    assert_eq!(spooled.read, len as u64);
    assert!(compress::shrinks(spooled.len, spooled.read), "{encoding:?}: {} of {len}", spooled.len);
    drop(spooled);
    PEAK.load(Ordering::Relaxed) - before
}

#[test]
fn compressing_eight_times_as_much_peaks_at_the_same_memory() {
    const MIB: usize = 1024 * 1024;
    for encoding in [Encoding::Gzip, Encoding::Br] {
        // brotli's memory grows with the input up to its window and a meta-block (4 MiB of input
        // here), then stays.
        let small = peak_while_compressing(4 * MIB, encoding);
        let large = peak_while_compressing(32 * MIB, encoding);
        eprintln!("{encoding:?}: peak {small} bytes for 4 MiB, {large} bytes for 32 MiB");
        assert!(large < small + MIB / 4, "{encoding:?}: {large} bytes for 32 MiB, {small} for 4 MiB");
        assert!(large < 32 * MIB, "{encoding:?}: the encoder's memory is bounded by its window: {large} bytes");
    }
}
