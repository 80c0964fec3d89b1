//! The query the monitors run on every scrape: [`parse`](super::parse) and [`query`](super::query)
//! in one pass over the body, keeping only the metrics asked for and borrowing from the body.
//!
//! Every line is still read and checked with the grammar of [`parse`](super::parse) (PANIC's
//! Python parser rejects a whole exposition for one bad line, so a body that is not Prometheus
//! text stays an error), and `# HELP`/`# TYPE` lines still open and close families, but a sample
//! line whose name is not asked for is only checked: nothing of it is kept or copied. Of a wanted
//! sample, an unlabelled value is summed in place; a label set is written once, as the Python JSON
//! key PANIC uses, into an arena of [`Scratch`], which a monitor keeps across rounds so that a
//! round in steady state allocates nothing here.
//!
//! The check is cheap on the lines exporters actually write (issue #14): an ASCII line is trimmed
//! and split bytewise; a sample line of the usual shape (a name, plain labels, one space, a
//! number, an optional timestamp) is checked in one pass, eight bytes at a time where it searches
//! ([`usual_sample`]), with the value tested for being a number without being parsed
//! ([`is_float`]); the usual `# HELP`/`# TYPE` lines are read the same way. Any other line, and
//! every wanted sample, goes through the general code, which gives the errors. Line ends are found
//! by `memchr` (vector instructions, behind its safe API), wanted label sets are hashed with
//! foldhash, keyed per scratch.
//!
//! What one query may keep is bounded ([`Limits`]): label sets per metric and bytes of label-set
//! keys in all; going over is a [`LimitError`] naming the bound. Everything else is bounded by the
//! body, which the HTTP layer caps.

use std::collections::HashMap;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;

use super::{
    parse_float, push_python_json_string, LabelledValue, MetricValue, MetricsData, ParseError,
    QueryError, Requirement,
};

/// What one query may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Distinct label sets kept per requested metric. node_exporter's largest family the system
    /// monitor reads is `node_cpu_seconds_total`, 8 modes per CPU: a 512-CPU host has 4,096; a
    /// host with hundreds of disks, mounts or interfaces stays in the hundreds per family.
    pub max_series_per_metric: usize,
    /// Bytes of label-set keys (Python JSON, `{"cpu": "0", "mode": "idle"}`) kept in all. Real
    /// keys are 20–200 bytes; 10,000 of the largest fit twice over.
    pub max_label_bytes: usize,
}

/// The default bound on label sets per metric.
pub const DEFAULT_MAX_SERIES_PER_METRIC: usize = 10_000;
/// The default bound on label-set bytes per query.
pub const DEFAULT_MAX_LABEL_BYTES: usize = 4 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_series_per_metric: DEFAULT_MAX_SERIES_PER_METRIC,
            max_label_bytes: DEFAULT_MAX_LABEL_BYTES,
        }
    }
}

/// A bound of [`Limits`] was reached: the query stopped there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// More distinct label sets of one metric than `max_series_per_metric`.
    #[error("metric `{metric}` has more than {max} label sets (the cap per metric)")]
    Series {
        /// The metric.
        metric: String,
        /// The bound.
        max: usize,
    },
    /// More label-set bytes than `max_label_bytes`.
    #[error("the label sets of the requested metrics exceed {max} bytes (the cap per scrape)")]
    LabelBytes {
        /// The bound.
        max: usize,
    },
}

/// Why [`query_text`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextQueryError {
    /// The body is not Prometheus text.
    #[error("not Prometheus text: {0}")]
    Parse(#[from] ParseError),
    /// The query failed (a strict metric absent, mixed labels).
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A bound was reached.
    #[error(transparent)]
    Limit(#[from] LimitError),
}

const NONE: u32 = u32::MAX;

/// A label name or value: a range of `Scratch::unescaped`.
type Span = (u32, u32);

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Range of `Scratch::keys`.
    key: (u32, u32),
    /// Range of `Scratch::spans` (name, value pairs).
    labels: (u32, u32),
    value: f64,
    /// The next entry of the same metric with the same key hash.
    next: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Absent,
    Single(f64),
    Labelled,
}

#[derive(Debug)]
struct Slot {
    kind: Kind,
    /// Indices into `Scratch::entries`, in order of first appearance.
    entries: Vec<u32>,
}

/// Buffers of [`query_text`], reused across calls: keep one per monitor.
#[derive(Debug, Default)]
pub struct Scratch {
    slots: Vec<Slot>,
    entries: Vec<Entry>,
    /// Label-set keys, one after another.
    keys: String,
    /// Kept labels: (name, value) pairs.
    spans: Vec<(Span, Span)>,
    /// The current line's labels.
    line: Vec<(Span, Span)>,
    /// Unescaped label values.
    unescaped: String,
    /// (metric, key hash) → first entry with that hash.
    index: HashMap<(u32, u64), u32, RandomState>,
    /// foldhash, seeded per scratch: label sets come from the target, so the hash is keyed (a
    /// target cannot pick colliding label sets without the seed); cheaper than std's SipHash
    /// (`docs/DEPENDENCIES.md`).
    hasher: RandomState,
}

impl Scratch {
    /// Empty buffers.
    pub fn new() -> Self {
        Scratch::default()
    }

    fn reset(&mut self, metrics: usize) {
        for slot in &mut self.slots {
            slot.kind = Kind::Absent;
            slot.entries.clear();
        }
        while self.slots.len() < metrics {
            self.slots.push(Slot {
                kind: Kind::Absent,
                entries: Vec::new(),
            });
        }
        self.entries.clear();
        self.keys.clear();
        self.spans.clear();
        self.line.clear();
        self.unescaped.clear();
        self.index.clear();
    }

    /// Bytes held by the buffers (capacity), for tests of the bounds.
    pub fn capacity_bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.entries.capacity() * 4)
            .sum::<usize>()
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.keys.capacity()
            + (self.spans.capacity() + self.line.capacity()) * std::mem::size_of::<(Span, Span)>()
            + self.unescaped.capacity()
            + self.index.capacity() * 24
    }
}

/// The answer of [`query_text`]: a view over the body and the scratch buffers.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    scratch: &'a Scratch,
    requested: &'a [(&'a str, Requirement)],
}

/// One requested metric in a [`Found`].
#[derive(Debug, Clone, Copy)]
pub enum Metric<'a> {
    /// Optional and absent.
    Absent,
    /// Unlabelled: the value (duplicates summed).
    Single(f64),
    /// Labelled: the distinct label sets, in order of first appearance.
    Labelled(LabelSets<'a>),
}

/// The label sets of a labelled metric.
#[derive(Debug, Clone, Copy)]
pub struct LabelSets<'a> {
    found: Found<'a>,
    entries: &'a [u32],
}

/// One label set and its value.
#[derive(Debug, Clone, Copy)]
pub struct LabelSet<'a> {
    found: Found<'a>,
    entry: Entry,
}

impl<'a> Found<'a> {
    /// The requested metric at `index` (request order).
    pub fn metric(&self, index: usize) -> Metric<'a> {
        let Some(slot) = self.scratch.slots.get(index) else {
            return Metric::Absent;
        };
        match slot.kind {
            Kind::Absent => Metric::Absent,
            Kind::Single(v) => Metric::Single(v),
            Kind::Labelled => Metric::Labelled(LabelSets {
                found: *self,
                entries: &slot.entries,
            }),
        }
    }

    /// A requested metric by name.
    pub fn get(&self, name: &str) -> Metric<'a> {
        match self.requested.iter().position(|(r, _)| *r == name) {
            Some(i) => self.metric(i),
            None => Metric::Absent,
        }
    }

    fn span(&self, (start, end): Span) -> &'a str {
        self.scratch
            .unescaped
            .get(start as usize..end as usize)
            .unwrap_or("")
    }

    /// The answer as [`query`](super::query) gives it (owned).
    pub fn to_metrics_data(&self) -> MetricsData {
        let mut out = Vec::with_capacity(self.requested.len());
        for (i, (name, _)) in self.requested.iter().enumerate() {
            let value = match self.metric(i) {
                Metric::Absent => None,
                Metric::Single(v) => Some(MetricValue::Single(v)),
                Metric::Labelled(sets) => Some(MetricValue::Labelled(
                    sets.iter()
                        .map(|set| LabelledValue {
                            labels: set
                                .labels()
                                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                                .collect(),
                            key: set.key().to_owned(),
                            value: set.value(),
                        })
                        .collect(),
                )),
            };
            out.push(((*name).to_owned(), value));
        }
        MetricsData(out)
    }
}

impl<'a> LabelSets<'a> {
    /// How many.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none (never, for a metric that was found).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The label sets in order of first appearance.
    pub fn iter(&self) -> impl Iterator<Item = LabelSet<'a>> + 'a {
        let found = self.found;
        self.entries.iter().filter_map(move |&i| {
            found
                .scratch
                .entries
                .get(i as usize)
                .map(|&entry| LabelSet { found, entry })
        })
    }

    /// The first label set.
    pub fn first(&self) -> Option<LabelSet<'a>> {
        self.iter().next()
    }
}

impl<'a> LabelSet<'a> {
    /// The value (the last sample with this label set).
    pub fn value(&self) -> f64 {
        self.entry.value
    }

    /// Python's `json.dumps` of the labels: the key PANIC uses.
    pub fn key(&self) -> &'a str {
        let (s, e) = self.entry.key;
        self.found
            .scratch
            .keys
            .get(s as usize..e as usize)
            .unwrap_or("")
    }

    /// The labels, in order of appearance.
    pub fn labels(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let found = self.found;
        let (s, e) = self.entry.labels;
        found
            .scratch
            .spans
            .get(s as usize..e as usize)
            .unwrap_or(&[])
            .iter()
            .map(move |&(k, v)| (found.span(k), found.span(v)))
    }

    /// A label's value.
    pub fn label(&self, name: &str) -> Option<&'a str> {
        self.labels().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

/// Family types, as far as the query needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Counter,
    Summary,
    Histogram,
    /// gauge, untyped, anything else: only the family's own name.
    Plain,
}

impl Family {
    fn from_type_words<'t>(mut words: impl Iterator<Item = &'t str>) -> Self {
        // `parse` joins the remaining words with spaces: only a single word can be a type.
        match (words.next(), words.next()) {
            (Some("counter"), None) => Family::Counter,
            (Some("summary"), None) => Family::Summary,
            (Some("histogram"), None) => Family::Histogram,
            _ => Family::Plain,
        }
    }

    /// Whether `name` is a sample name of family `family` of this type.
    fn accepts(self, family: &str, name: &str) -> bool {
        let Some(rest) = name.strip_prefix(family) else {
            return false;
        };
        match self {
            Family::Summary => matches!(rest, "" | "_count" | "_sum"),
            Family::Histogram => matches!(rest, "_count" | "_sum" | "_bucket"),
            Family::Counter | Family::Plain => rest.is_empty(),
        }
    }
}

fn is_ws(c: char) -> bool {
    c.is_whitespace()
}

/// The ASCII bytes `char::is_whitespace` accepts.
fn is_ascii_ws(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// Where the pieces of `text.split('\n')` end: at each newline, and at the end. The newline is
/// found by `memchr` (on these 20–120-byte lines about half the instructions of the eight-bytes-
/// at-a-time [`find_first`]: `docs/BENCHMARKS.md`, "Instructions per system round").
struct LineEnds<'t> {
    bytes: &'t [u8],
    /// Where the search goes on; past the end when done.
    from: usize,
}

impl<'t> LineEnds<'t> {
    fn new(bytes: &'t [u8]) -> Self {
        LineEnds { bytes, from: 0 }
    }
}

impl Iterator for LineEnds<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.from > self.bytes.len() {
            return None;
        }
        let end = self.from
            + memchr::memchr(b'\n', self.bytes.get(self.from..).unwrap_or(&[]))
                .unwrap_or(self.bytes.len() - self.from);
        self.from = end + 1;
        Some(end)
    }
}

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const ONES: u64 = 0x0101_0101_0101_0101;

/// The high bit of each byte of `word` (little-endian) that equals `byte`: exact, no borrow
/// between bytes.
fn eq_mask(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    // A byte's high bit of `(x & LOW7) + LOW7` is set when its low seven bits are not all zero
    // (no carry leaves a byte); with `x`'s own high bit, when the byte is not zero.
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// The high bit of each byte of `word` that is a space or a control byte (below `!`).
fn space_or_control_mask(word: u64) -> u64 {
    // For a byte below 0x80, `b + 0x5f` has its high bit set when `b >= 0x21`.
    !(((word & LOW7).wrapping_add(ONES * 0x5f)) | word | LOW7)
}

/// The first position at or after `from` where `mask` (eight bytes at a time) or `stop` (on the
/// last few bytes) finds a byte; `bytes.len()` if none. `mask` and `stop` must agree.
fn find_first(
    bytes: &[u8],
    from: usize,
    mask: impl Fn(u64) -> u64,
    stop: impl Fn(u8) -> bool,
) -> usize {
    let mut i = from;
    while let Some(word) = bytes
        .get(i..i + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
    {
        let m = mask(u64::from_le_bytes(word));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let rest = bytes.get(i..).unwrap_or(&[]);
    i + rest.iter().position(|&b| stop(b)).unwrap_or(rest.len())
}

/// What a `# HELP` or `# TYPE` line of the usual shape (ASCII, `# `, the keyword, one space, the
/// name, and for `TYPE` one space and one word) says, as the general code reads it; `None` for
/// any other comment (the general code reads it).
fn usual_comment(line: &str) -> Option<(bool, &str, Option<&str>)> {
    let (help, rest) = if let Some(rest) = line.strip_prefix("# HELP ") {
        (true, rest)
    } else {
        (false, line.strip_prefix("# TYPE ")?)
    };
    let bytes = rest.as_bytes();
    // The name ends at the first byte below `!`, eight bytes at a time; a control byte that is
    // not whitespace there is left to the general code.
    let name_len = find_first(bytes, 0, space_or_control_mask, |b| b <= b' ');
    if name_len == 0 || bytes.get(name_len).is_some_and(|&b| !is_ascii_ws(b)) {
        return None;
    }
    let name = rest.get(..name_len)?;
    if help {
        return Some((true, name, None));
    }
    // The line is trimmed: after the name, nothing or whitespace and more.
    let Some(after) = rest.get(name_len..).and_then(|r| r.strip_prefix(' ')) else {
        return (name_len == bytes.len()).then_some((false, name, None));
    };
    if after.is_empty() || after.bytes().any(is_ascii_ws) {
        return None;
    }
    Some((false, name, Some(after)))
}

/// `s.trim()` of an ASCII line, bytewise (`char::is_whitespace` is [`is_ascii_ws`] on ASCII).
fn trim_ascii_line(s: &str) -> &str {
    let bytes = s.as_bytes();
    let start = bytes
        .iter()
        .position(|&b| !is_ascii_ws(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !is_ascii_ws(b))
        .map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or("")
}

/// `split_whitespace` of a line: bytewise when the line is ASCII.
enum Words<'t> {
    /// What is left of an ASCII line.
    Ascii(&'t str),
    Unicode(std::str::SplitWhitespace<'t>),
}

impl<'t> Words<'t> {
    fn new(s: &'t str, ascii: bool) -> Self {
        if ascii {
            Words::Ascii(s)
        } else {
            Words::Unicode(s.split_whitespace())
        }
    }
}

impl<'t> Iterator for Words<'t> {
    type Item = &'t str;

    fn next(&mut self) -> Option<&'t str> {
        match self {
            Words::Ascii(rest) => {
                let bytes = rest.as_bytes();
                let start = bytes.iter().position(|&b| !is_ascii_ws(b))?;
                let len = bytes
                    .get(start..)
                    .unwrap_or(&[])
                    .iter()
                    .position(|&b| is_ascii_ws(b))
                    .unwrap_or(bytes.len() - start);
                let word = rest.get(start..start + len).unwrap_or("");
                *rest = rest.get(start + len..).unwrap_or("");
                Some(word)
            }
            Words::Unicode(words) => words.next(),
        }
    }

    fn last(self) -> Option<&'t str> {
        match self {
            Words::Ascii(rest) => {
                let bytes = rest.as_bytes();
                let end = bytes.iter().rposition(|&b| !is_ascii_ws(b))? + 1;
                let start = bytes
                    .get(..end)
                    .unwrap_or(&[])
                    .iter()
                    .rposition(|&b| is_ascii_ws(b))
                    .map_or(0, |i| i + 1);
                rest.get(start..end)
            }
            Words::Unicode(words) => words.last(),
        }
    }
}

/// Whether `parse_float(token)` (Rust's `f64::from_str`) accepts `token`, without computing the
/// value: an optional sign, then `inf`, `infinity` or `nan` in any case, or digits with at most
/// one `.` and at least one digit, then optionally `e`/`E`, an optional sign and at least one
/// digit. The property test `value_check_is_parse_float` holds it to `parse_float`.
pub(crate) fn is_float(token: &str) -> bool {
    is_float_bytes(token.as_bytes())
}

/// [`is_float`] on bytes.
fn is_float_bytes(mut b: &[u8]) -> bool {
    if let Some((b'+' | b'-', rest)) = b.split_first() {
        b = rest;
    }
    if b.is_empty() {
        return false;
    }
    let digits = |b: &[u8]| b.iter().take_while(|c| c.is_ascii_digit()).count();
    let int = digits(b);
    let mut i = int;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        frac = digits(b.get(i + 1..).unwrap_or(&[]));
        i += 1 + frac;
    }
    if int + frac == 0 {
        return b.eq_ignore_ascii_case(b"inf")
            || b.eq_ignore_ascii_case(b"nan")
            || b.eq_ignore_ascii_case(b"infinity");
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let exp = digits(b.get(i..).unwrap_or(&[]));
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

/// The bytes of a plain label name (`[A-Za-z0-9_]`), as a table.
const LABEL_NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_';
        b += 1;
    }
    table
};

/// Whether `line` (trimmed, ASCII, not a comment) is a sample of the usual shape, which the
/// general code accepts: a name, optionally `{name="value",…}` with plain label names, one space,
/// a number, optionally one space and a number. Returns where the name ends. `None` only means
/// "not known to be acceptable": the general code then decides, and names the error.
fn usual_sample(line: &[u8]) -> Option<usize> {
    let mut i = find_first(
        line,
        0,
        |w| eq_mask(w, b'{') | space_or_control_mask(w),
        |b| b == b'{' || b <= b' ',
    );
    let name_end = i;
    if name_end == 0 || line.get(i).is_some_and(|&b| b < b' ') {
        return None;
    }
    if line.get(i) == Some(&b'{') {
        i += 1;
        loop {
            let start = i;
            while line
                .get(i)
                .is_some_and(|&b| LABEL_NAME_BYTES[usize::from(b)])
            {
                i += 1;
            }
            if i == start {
                // `{}`, or `,}` after the last label.
                if line.get(i) == Some(&b'}') {
                    i += 1;
                    break;
                }
                return None;
            }
            if line.get(i..i + 2) != Some(b"=\"") {
                return None;
            }
            i += 2;
            // The value: `\` escapes any one byte (as `skip_quoted`).
            loop {
                i = find_first(
                    line,
                    i,
                    |w| eq_mask(w, b'"') | eq_mask(w, b'\\'),
                    |b| b == b'"' || b == b'\\',
                );
                match line.get(i)? {
                    b'"' => break,
                    _ => i += 2,
                }
            }
            i += 1;
            match line.get(i)? {
                b',' => i += 1,
                b'}' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    // One space, the value, and optionally one space and the timestamp (the line is trimmed).
    let token = |from: usize| {
        let rest = line.get(from..).unwrap_or(&[]);
        let len = rest.iter().position(|&b| b <= b' ').unwrap_or(rest.len());
        (rest.get(..len).unwrap_or(&[]), from + len)
    };
    if line.get(i) != Some(&b' ') {
        return None;
    }
    let (value, end) = token(i + 1);
    if !is_float_bytes(value) {
        return None;
    }
    if end == line.len() {
        return Some(name_end);
    }
    if line.get(end) != Some(&b' ') {
        return None;
    }
    let (timestamp, end) = token(end + 1);
    (end == line.len() && is_float_bytes(timestamp)).then_some(name_end)
}

/// `s.trim_start_matches(char::is_whitespace)`, bytewise while the text is ASCII.
fn trim_ws_start(s: &str) -> &str {
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if is_ascii_ws(b) {
            i += 1;
        } else if b >= 0x80 {
            return s.get(i..).unwrap_or("").trim_start_matches(is_ws);
        } else {
            break;
        }
    }
    s.get(i..).unwrap_or("")
}

/// Where a sample's name ends: `line.find(|c| c == '{' || c.is_whitespace())`, bytewise while the
/// text is ASCII.
fn name_end(line: &str) -> usize {
    for (i, &b) in line.as_bytes().iter().enumerate() {
        if b == b'{' || is_ascii_ws(b) {
            return i;
        }
        if b >= 0x80 {
            let rest = line.get(i..).unwrap_or("");
            return i + rest
                .find(|c: char| c == '{' || c.is_whitespace())
                .unwrap_or(rest.len());
        }
    }
    line.len()
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// [`parse`](super::parse) then [`query`](super::query), in one pass, keeping only what
/// `requested` asks for, within `limits`. The same answer as the two (and the same errors, a parse
/// error first), unless a bound is reached.
pub fn query_text<'a>(
    text: &str,
    requested: &'a [(&'a str, Requirement)],
    limits: &Limits,
    scratch: &'a mut Scratch,
) -> Result<Found<'a>, TextQueryError> {
    scratch.reset(requested.len());
    let mut family: Option<(&str, Family)> = None;
    // The first mixed-labels error; from then on nothing more is kept (the query has failed), but
    // every line is still checked, since a parse error comes first.
    let mut mixed: Option<usize> = None;
    // Every line of an ASCII body is ASCII; otherwise each line is checked.
    let all_ascii = text.is_ascii();
    // The last sample's name and family type, and whether it was wanted (a name is never empty).
    let mut last: (&str, Option<Family>, Option<usize>) = ("", None, None);
    let bytes = text.as_bytes();
    let mut start = 0;
    // `text.split('\n')`.
    for (index, end) in LineEnds::new(bytes).enumerate() {
        let raw = text.get(start..end).unwrap_or("");
        start = end + 1;
        let ascii = all_ascii || raw.is_ascii();
        let line = if ascii {
            trim_ascii_line(raw)
        } else {
            raw.trim()
        };
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            if let Some((help, name, ty)) = ascii.then(|| usual_comment(line)).flatten() {
                if !help {
                    family = Some((name, Family::from_type_words(ty.into_iter())));
                } else if family.is_none_or(|(n, _)| n != name) {
                    family = Some((name, Family::Plain));
                }
                continue;
            }
            let mut parts = Words::new(line, ascii).skip(1);
            let keyword = parts.next();
            let Some(name) = parts.next() else {
                continue;
            };
            match keyword {
                Some("HELP") if family.is_none_or(|(n, _)| n != name) => {
                    family = Some((name, Family::Plain));
                }
                Some("TYPE") => {
                    let mut rest = Words::new(line, ascii);
                    // `#`, `TYPE`, the name: what follows is the type.
                    rest.nth(2);
                    family = Some((name, Family::from_type_words(rest)));
                }
                _ => {}
            }
            continue;
        }
        let error = |problem: String| ParseError {
            line: index + 1,
            problem,
        };
        // A usual ASCII line is checked whole here; the general code below checks the others
        // (and reads a wanted sample).
        let usual = if ascii {
            usual_sample(line.as_bytes())
        } else {
            None
        };
        let name_end = usual.unwrap_or_else(|| name_end(line));
        let name = &line[..name_end];
        if name.is_empty() {
            return Err(error("sample without a metric name".to_owned()).into());
        }
        let ty = match family {
            Some((fam, ty)) if ty.accepts(fam, name) => Some(ty),
            Some(_) => {
                family = None;
                None
            }
            None => None,
        };
        // The sample's Python name is `name`, or `name_total` for a counter's sample without it.
        let wanted = if mixed.is_some() {
            None
        } else if last.0 == name && last.1 == ty {
            // Samples of a family come one after another.
            last.2
        } else {
            let wanted = if ty == Some(Family::Counter) && !name.ends_with("_total") {
                requested
                    .iter()
                    .position(|(r, _)| r.strip_suffix("_total") == Some(name))
            } else {
                requested.iter().position(|(r, _)| *r == name)
            };
            last = (name, ty, wanted);
            wanted
        };
        if wanted.is_none() && usual.is_some() {
            continue;
        }
        let mut rest = trim_ws_start(&line[name_end..]);
        scratch.line.clear();
        let line_start = scratch.unescaped.len();
        let mut labelled = false;
        if let Some(after_brace) = rest.strip_prefix('{') {
            rest = if wanted.is_some() {
                labels_kept(after_brace, scratch).map_err(error)?
            } else {
                labels_checked(after_brace).map_err(error)?
            };
            labelled = !scratch.line.is_empty();
        }
        let mut tokens = Words::new(rest, ascii);
        let Some(value_text) = tokens.next() else {
            return Err(error(format!("metric `{name}` has no value")).into());
        };
        let not_a_number = || error(format!("metric `{name}`: `{value_text}` is not a number"));
        // Of a sample not asked for, only whether the value is a number matters.
        let value = if wanted.is_some() {
            parse_float(value_text).ok_or_else(not_a_number)?
        } else if is_float(value_text) {
            0.0
        } else {
            return Err(not_a_number().into());
        };
        if let Some(timestamp) = tokens.last() {
            if !is_float(timestamp) {
                return Err(error(format!(
                    "metric `{name}`: timestamp `{timestamp}` is not a number"
                ))
                .into());
            }
        }
        let Some(metric) = wanted else {
            continue;
        };
        let kept = keep(scratch, requested, limits, metric, labelled, value)?;
        if kept != Kept::New {
            // Nothing of the line's labels is needed.
            scratch.unescaped.truncate(line_start);
        }
        if kept == Kept::Mixed {
            mixed = Some(metric);
        }
    }
    if let Some(metric) = mixed {
        let name = requested.get(metric).map_or("", |(r, _)| *r);
        return Err(QueryError::MixedLabels(name.to_owned()).into());
    }
    for (i, (metric, requirement)) in requested.iter().enumerate() {
        let absent = scratch.slots.get(i).is_none_or(|s| s.kind == Kind::Absent);
        if absent && *requirement == Requirement::Strict {
            return Err(QueryError::MetricNotFound((*metric).to_owned()).into());
        }
    }
    Ok(Found { scratch, requested })
}

/// What became of a wanted sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    /// A new label set: its labels are kept.
    New,
    /// Added to a value or replacing one.
    Merged,
    /// Both labelled and unlabelled samples: the query fails.
    Mixed,
}

/// Keeps a wanted sample (its labels are in `scratch.line`).
fn keep(
    scratch: &mut Scratch,
    requested: &[(&str, Requirement)],
    limits: &Limits,
    metric: usize,
    labelled: bool,
    value: f64,
) -> Result<Kept, LimitError> {
    let Some(slot) = scratch.slots.get_mut(metric) else {
        return Ok(Kept::Merged);
    };
    match (slot.kind, labelled) {
        (Kind::Absent, false) => slot.kind = Kind::Single(value),
        (Kind::Single(total), false) => slot.kind = Kind::Single(total + value),
        (Kind::Absent | Kind::Labelled, true) => {
            slot.kind = Kind::Labelled;
            // Write the key at the end of the arena; drop it again if it is known.
            let start = scratch.keys.len();
            scratch.keys.push('{');
            for (i, &(k, v)) in scratch.line.iter().enumerate() {
                if i > 0 {
                    scratch.keys.push_str(", ");
                }
                push_python_json_string(&mut scratch.keys, span_str(&scratch.unescaped, k));
                scratch.keys.push_str(": ");
                push_python_json_string(&mut scratch.keys, span_str(&scratch.unescaped, v));
            }
            scratch.keys.push('}');
            let key = scratch.keys.get(start..).unwrap_or("");
            let hash = scratch.hasher.hash_one(key);
            let metric_u32 = to_u32(metric);
            let mut at = scratch
                .index
                .get(&(metric_u32, hash))
                .copied()
                .unwrap_or(NONE);
            let mut last = NONE;
            while let Some(entry) = scratch.entries.get(at as usize) {
                if scratch.keys.get(entry.key.0 as usize..entry.key.1 as usize) == Some(key) {
                    break;
                }
                last = at;
                at = entry.next;
            }
            if let Some(entry) = scratch.entries.get_mut(at as usize) {
                entry.value = value;
                scratch.keys.truncate(start);
                return Ok(Kept::Merged);
            }
            if slot.entries.len() >= limits.max_series_per_metric {
                let metric = requested.get(metric).map_or("", |(r, _)| *r);
                return Err(LimitError::Series {
                    metric: metric.to_owned(),
                    max: limits.max_series_per_metric,
                });
            }
            if scratch.keys.len() + scratch.unescaped.len() > limits.max_label_bytes {
                return Err(LimitError::LabelBytes {
                    max: limits.max_label_bytes,
                });
            }
            let index = to_u32(scratch.entries.len());
            let labels_start = to_u32(scratch.spans.len());
            scratch.spans.extend_from_slice(&scratch.line);
            scratch.entries.push(Entry {
                key: (to_u32(start), to_u32(scratch.keys.len())),
                labels: (labels_start, to_u32(scratch.spans.len())),
                value,
                next: NONE,
            });
            slot.entries.push(index);
            match scratch.entries.get_mut(last as usize) {
                Some(prev) => prev.next = index,
                None => {
                    scratch.index.insert((metric_u32, hash), index);
                }
            }
            return Ok(Kept::New);
        }
        _ => return Ok(Kept::Mixed),
    }
    Ok(Kept::Merged)
}

fn span_str(unescaped: &str, (start, end): Span) -> &str {
    unescaped.get(start as usize..end as usize).unwrap_or("")
}

/// Checks `name="value", …}` (after the brace) as [`parse_labels`](super::parse_labels) does,
/// keeping nothing; returns what follows `}`.
fn labels_checked(mut s: &str) -> Result<&str, String> {
    loop {
        s = trim_ws_start(s);
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let (label_name, after_eq) = label_name(s)?;
        let quoted = value_start(after_eq, label_name)?;
        let after = skip_quoted(quoted)
            .ok_or_else(|| format!("label `{label_name}`: unterminated value"))?;
        s = separator(after)?;
    }
}

/// Reads `name="value", …}` (after the brace) as [`parse_labels`](super::parse_labels) does, into
/// `scratch.line` (a repeated name keeps its first position and its last value); returns what
/// follows `}`.
fn labels_kept<'t>(mut s: &'t str, scratch: &mut Scratch) -> Result<&'t str, String> {
    // Beyond this many labels on one line, repeated names are found through a map.
    const LINEAR: usize = 16;
    let mut positions: Option<HashMap<&str, usize>> = None;
    // The first names of the line, in `scratch.line`'s order (on the stack: no allocation for
    // the usual few labels).
    let mut names: [&str; LINEAR] = [""; LINEAR];
    loop {
        s = trim_ws_start(s);
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let (label_name, after_eq) = label_name(s)?;
        let quoted = value_start(after_eq, label_name)?;
        let value_end = skip_quoted(quoted)
            .ok_or_else(|| format!("label `{label_name}`: unterminated value"))?;
        // The raw value is `quoted[..len - 1 - rest]`; unescape it into the arena.
        let raw_len = quoted.len() - value_end.len() - 1;
        let raw = quoted.get(..raw_len).unwrap_or("");
        let name_span = push_unescaped(&mut scratch.unescaped, label_name, false);
        let value_span = push_unescaped(&mut scratch.unescaped, raw, true);
        let distinct = scratch.line.len();
        let existing = match &positions {
            Some(map) => map.get(label_name).copied(),
            None => names
                .get(..distinct)
                .and_then(|first| first.iter().position(|n| *n == label_name)),
        };
        match existing.and_then(|i| scratch.line.get_mut(i)) {
            Some(pair) => pair.1 = value_span,
            None => {
                match (&mut positions, names.get_mut(distinct)) {
                    (Some(map), _) => {
                        map.insert(label_name, distinct);
                    }
                    (None, Some(slot)) => *slot = label_name,
                    (None, None) => {
                        let mut map: HashMap<&str, usize> =
                            names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
                        map.insert(label_name, distinct);
                        positions = Some(map);
                    }
                }
                scratch.line.push((name_span, value_span));
            }
        }
        s = separator(value_end)?;
    }
}

/// The label name before `=` (trimmed) and what follows `=`.
fn label_name(s: &str) -> Result<(&str, &str), String> {
    let eq = s
        .bytes()
        .position(|b| matches!(b, b'=' | b'}' | b'"'))
        .filter(|&i| s.as_bytes().get(i) == Some(&b'='))
        .ok_or_else(|| "label without `=`".to_owned())?;
    let label_name = s[..eq].trim();
    if label_name.is_empty() {
        return Err("empty label name".to_owned());
    }
    Ok((label_name, &s[eq + 1..]))
}

/// After `=`: the text after the opening quote.
fn value_start<'t>(after_eq: &'t str, label_name: &str) -> Result<&'t str, String> {
    trim_ws_start(after_eq)
        .strip_prefix('"')
        .ok_or_else(|| format!("label `{label_name}`: value is not quoted"))
}

/// After a value: `,` or `}` must follow.
fn separator(after: &str) -> Result<&str, String> {
    let s = trim_ws_start(after);
    if let Some(after_comma) = s.strip_prefix(',') {
        Ok(after_comma)
    } else if s.starts_with('}') {
        Ok(s)
    } else {
        Err("labels must be separated by `,`".to_owned())
    }
}

/// Skips a quoted value (after its opening quote): what follows the closing quote, or `None` if
/// it is not terminated. Escapes are `\` and any one character, as in `parse_quoted`.
fn skip_quoted(s: &str) -> Option<&str> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => return s.get(i + 1..),
            // A continuation byte is never `"` or `\`, so skipping one byte is skipping one char
            // as far as the next quote or backslash is concerned.
            b'\\' => {
                if i + 1 >= bytes.len() {
                    return None;
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    None
}

/// Appends `raw` (unescaped as `parse_quoted` does when `escaped`) to `arena`; returns its span.
fn push_unescaped(arena: &mut String, raw: &str, escaped: bool) -> Span {
    let start = to_u32(arena.len());
    if !escaped || !raw.contains('\\') {
        arena.push_str(raw);
    } else {
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                arena.push(c);
                continue;
            }
            match chars.next() {
                Some('\\') => arena.push('\\'),
                Some('"') => arena.push('"'),
                Some('n') => arena.push('\n'),
                Some(other) => {
                    arena.push('\\');
                    arena.push(other);
                }
                None => arena.push('\\'),
            }
        }
    }
    (start, to_u32(arena.len()))
}

#[cfg(test)]
mod tests {
    use super::{
        eq_mask, is_float, parse_float, space_or_control_mask, usual_comment, LineEnds, Words,
    };

    /// Every byte value, beside every other, at every position of a word.
    #[test]
    fn word_masks_are_exact() {
        let want = |bytes: &[u8; 8], pred: &dyn Fn(u8) -> bool| {
            bytes
                .iter()
                .enumerate()
                .fold(0u64, |m, (i, &x)| m | (u64::from(pred(x)) << (8 * i + 7)))
        };
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for at in 0..8 {
                    let mut bytes = [b; 8];
                    bytes[at] = a;
                    let word = u64::from_le_bytes(bytes);
                    for target in [b'\n', b'"', b'\\', b'{', 0, 0x80, 0xff] {
                        assert_eq!(
                            eq_mask(word, target),
                            want(&bytes, &|x| x == target),
                            "{bytes:?} {target}"
                        );
                    }
                    assert_eq!(
                        space_or_control_mask(word),
                        want(&bytes, &|x| x <= b' '),
                        "{bytes:?}"
                    );
                }
            }
        }
    }

    /// The line ends are those of `split('\n')`, with newlines on and around block boundaries.
    #[test]
    fn line_ends_are_split() {
        let mut state: u64 = 0x5eed_0005;
        for len in (0..200).chain([255, 256, 257, 1000]) {
            for density in [0u64, 1, 8, 64] {
                let body: String = (0..len)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        if density > 0 && (state >> 33) % density == 0 {
                            '\n'
                        } else {
                            'a'
                        }
                    })
                    .collect();
                let mut start = 0;
                let got: Vec<&str> = LineEnds::new(body.as_bytes())
                    .map(|end| {
                        let line = &body[start..end];
                        start = end + 1;
                        line
                    })
                    .collect();
                let want: Vec<&str> = body.split('\n').collect();
                assert_eq!(got, want, "{len} bytes");
            }
        }
    }

    /// The usual comment shapes, and the near misses left to the general code.
    #[test]
    fn usual_comments() {
        assert_eq!(usual_comment("# HELP a b c"), Some((true, "a", None)));
        assert_eq!(usual_comment("# HELP a"), Some((true, "a", None)));
        assert_eq!(usual_comment("# TYPE a"), Some((false, "a", None)));
        assert_eq!(
            usual_comment("# TYPE a counter"),
            Some((false, "a", Some("counter")))
        );
        for other in [
            "# TYPE a counter x",
            "# TYPE a  counter",
            "# TYPE a\tcounter",
            "# HELP  a",
            "#HELP a",
            "# help a",
            "# EOF",
            "#",
        ] {
            assert_eq!(usual_comment(other), None, "{other:?}");
        }
    }

    /// The alphabet of float syntax and its near misses.
    const ALPHABET: [&str; 20] = [
        "0", "1", "9", ".", "e", "E", "+", "-", "i", "I", "n", "N", "f", "F", "a", "t", "y", "_",
        "x", "é",
    ];

    fn agree(token: &str) {
        assert_eq!(
            is_float(token),
            parse_float(token).is_some(),
            "is_float and parse_float disagree on {token:?}"
        );
    }

    /// `is_float` accepts exactly what `parse_float` accepts: every string of up to four symbols
    /// of the alphabet, the named edge cases, and random concatenations of pieces of floats.
    #[test]
    fn value_check_is_parse_float() {
        let mut level = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::with_capacity(level.len() * ALPHABET.len());
            for prefix in &level {
                for symbol in ALPHABET {
                    let token = format!("{prefix}{symbol}");
                    agree(&token);
                    next.push(token);
                }
            }
            level = next;
        }
        for token in [
            "",
            "+",
            "-",
            ".",
            "+.",
            "-.",
            "NaN",
            "nan",
            "+NaN",
            "-nan",
            "Inf",
            "+Inf",
            "-Inf",
            "inf",
            "INF",
            "infinity",
            "+Infinity",
            "-INFINITY",
            "infinit",
            "infinityy",
            "nana",
            "0x1p3",
            "0x10",
            "1_000",
            "1e400",
            "-1e-400",
            "1e+5",
            "1E-5",
            "1e",
            "1e+",
            ".5",
            "5.",
            "5.e3",
            ".e3",
            "1.2.3",
            "01",
            "00.00e00",
            "1e1e1",
            "++1",
            "+-1",
            "1 ",
            " 1",
            "٣",
            "1e99999999999999999999",
            "123456789012345678901234567890",
        ] {
            agree(token);
        }
        let pieces = [
            "inf", "infinity", "nan", "NaN", "Inf", "1", "23", "0", ".", "e", "E", "+", "-", "_",
            "0x", "p", "é",
        ];
        let mut state: u64 = 0x5eed_0004;
        for _ in 0..200_000 {
            let mut token = String::new();
            // A small LCG: the test needs no crate and stays deterministic.
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let len = (state >> 60) as usize;
            for k in 0..len {
                let pick = (state >> (4 * k % 56)) as usize % pieces.len();
                token.push_str(pieces[pick]);
            }
            agree(&token);
        }
    }

    /// The bytewise words are `split_whitespace`'s on ASCII, `last` included.
    #[test]
    fn ascii_words_are_split_whitespace() {
        for line in [
            "",
            " ",
            "a",
            " a ",
            "a b",
            "\ta\x0bb\x0cc\rd\n",
            "  x  1  2  ",
            "a  ",
            "a b c d e",
        ] {
            let want: Vec<&str> = line.split_whitespace().collect();
            let got: Vec<&str> = Words::new(line, true).collect();
            assert_eq!(want, got, "{line:?}");
            assert_eq!(
                line.split_whitespace().last(),
                Words::new(line, true).last(),
                "{line:?}"
            );
            let mut words = Words::new(line, true);
            let mut reference = line.split_whitespace();
            assert_eq!(words.next(), reference.next());
            assert_eq!(words.last(), reference.last(), "{line:?} after one word");
        }
    }
}
