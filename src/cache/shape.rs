//! What the cache knows about one statement shape (its digest, in one schema): whether it
//! may be cached and for how long, which tables it reads, or which tables it writes.
//!
//! Working this out costs a sqlparser parse, so it is done once per (schema, digest) and
//! kept in a bounded map: the hot path is a hash look-up. The shape also carries the
//! per-digest hit counter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::invalidation::{read, write, Generations, TableGen, WriteSet};
use crate::config::CacheRule;
use crate::router::analyze;

/// Shapes kept at most; when full the map starts over (a shop has a few thousand shapes).
pub const MAX_SHAPES: usize = 16 * 1024;

/// Schemas whose contents describe the node itself, not data: cached only if a rule says so.
const SYSTEM_SCHEMAS: [&str; 4] = ["information_schema", "performance_schema", "mysql", "sys"];

/// Why a read shape is not cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoCache {
    /// Reads information_schema, performance_schema, mysql or sys (no rule allows it).
    SystemSchema,
    /// sqlparser could not list its tables, so no write could invalidate it.
    Unparsed,
    /// An unqualified table and no current schema.
    NoSchema,
    /// Too many tables are tracked already.
    Untracked,
    /// A rule says `never`.
    Rule,
}

/// A read shape's verdict.
#[derive(Debug)]
pub struct ReadShape {
    pub digest: Box<str>,
    pub verdict: Result<Duration, NoCache>,
    pub tables: Box<[Arc<TableGen>]>,
    pub hits: AtomicU64,
}

/// A rule with its regex compiled.
#[derive(Debug)]
pub struct Rule {
    pub rule: CacheRule,
    regex: Option<regex::Regex>,
}

impl Rule {
    pub fn compile(rule: &CacheRule) -> Result<Rule, regex::Error> {
        let regex = rule.regex.as_deref().map(regex::Regex::new).transpose()?;
        Ok(Rule {
            rule: rule.clone(),
            regex,
        })
    }

    fn matches(&self, digest: &str, tables: &[String]) -> bool {
        if let Some(re) = &self.regex {
            return re.is_match(digest);
        }
        if let Some(d) = &self.rule.digest {
            return d == digest;
        }
        if let Some(t) = &self.rule.table {
            let t = t.to_ascii_lowercase();
            return tables.iter().any(|q| {
                *q == t || (!t.contains('.') && q.rsplit('.').next() == Some(t.as_str()))
            });
        }
        false
    }
}

#[derive(Debug)]
enum Shape {
    Read(Arc<ReadShape>),
    Write(Arc<WriteSet>),
}

/// schema → digest → shape.
type BySchema = HashMap<Vec<u8>, HashMap<Box<str>, Shape>>;

/// (schema, digest) → shape.
#[derive(Debug, Default)]
pub struct Shapes {
    map: RwLock<BySchema>,
    len: AtomicU64,
}

impl Shapes {
    /// The read shape of `digest` in `schema`, analysing `sql` on first sight.
    pub fn read(
        &self,
        schema: Option<&[u8]>,
        digest: &str,
        sql: &[u8],
        rules: &[Rule],
        default_ttl: Duration,
        gens: &Generations,
    ) -> Arc<ReadShape> {
        let s = schema.unwrap_or_default();
        if let Some(Shape::Read(r)) = read(&self.map).get(s).and_then(|m| m.get(digest)) {
            return Arc::clone(r);
        }
        let shape = Arc::new(analyse_read(schema, digest, sql, rules, default_ttl, gens));
        self.insert(s, digest, Shape::Read(Arc::clone(&shape)));
        shape
    }

    /// The tables a write shape touches. `insert`: an INSERT/REPLACE, which writes exactly
    /// its target table (read from the text's head, so a batch of any length is cheap).
    pub fn write(
        &self,
        schema: Option<&[u8]>,
        digest: &str,
        sql: &[u8],
        insert: bool,
        gens: &Generations,
    ) -> Arc<WriteSet> {
        let s = schema.unwrap_or_default();
        if let Some(Shape::Write(w)) = read(&self.map).get(s).and_then(|m| m.get(digest)) {
            return Arc::clone(w);
        }
        let w = Arc::new(analyse_write(schema, sql, insert, gens));
        if !digest.is_empty() {
            self.insert(s, digest, Shape::Write(Arc::clone(&w)));
        }
        w
    }

    fn insert(&self, schema: &[u8], digest: &str, shape: Shape) {
        let mut map = write(&self.map);
        if self.len.load(Ordering::Relaxed) >= MAX_SHAPES as u64 {
            map.clear();
            self.len.store(0, Ordering::Relaxed);
        }
        let prev = map
            .entry(schema.to_vec())
            .or_default()
            .insert(digest.into(), shape);
        if prev.is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hits per digest (summed over schemas), most hit first.
    pub fn digest_hits(&self) -> Vec<(String, u64)> {
        let mut acc: HashMap<&str, u64> = HashMap::new();
        let map = read(&self.map);
        for m in map.values() {
            for s in m.values() {
                if let Shape::Read(r) = s {
                    let h = r.hits.load(Ordering::Relaxed);
                    if h > 0 {
                        *acc.entry(&r.digest).or_default() += h;
                    }
                }
            }
        }
        let mut v: Vec<(String, u64)> = acc.into_iter().map(|(d, h)| (d.to_owned(), h)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

/// `name` qualified with `schema` and lower-cased; None if unqualified without a schema.
fn qualify(schema: Option<&[u8]>, name: &str) -> Option<String> {
    if name.contains('.') {
        return Some(name.to_ascii_lowercase());
    }
    let s = std::str::from_utf8(schema?).ok()?;
    Some(format!("{s}.{name}").to_ascii_lowercase())
}

fn analyse_read(
    schema: Option<&[u8]>,
    digest: &str,
    sql: &[u8],
    rules: &[Rule],
    default_ttl: Duration,
    gens: &Generations,
) -> ReadShape {
    let mut shape = ReadShape {
        digest: digest.into(),
        verdict: Err(NoCache::Unparsed),
        tables: Box::new([]),
        hits: AtomicU64::new(0),
    };
    let Ok(names) = analyze::tables(sql) else {
        return shape;
    };
    let mut qualified = Vec::with_capacity(names.len());
    for n in &names {
        match qualify(schema, n) {
            Some(q) => qualified.push(q),
            None => {
                shape.verdict = Err(NoCache::NoSchema);
                return shape;
            }
        }
    }
    let rule = rules.iter().find(|r| r.matches(digest, &qualified));
    let system = qualified.iter().any(|q| {
        SYSTEM_SCHEMAS
            .iter()
            .any(|s| q.split('.').next() == Some(*s))
    });
    let ttl = match rule {
        Some(r) if r.rule.never => {
            shape.verdict = Err(NoCache::Rule);
            return shape;
        }
        Some(r) => r.rule.ttl.unwrap_or(default_ttl),
        None if system => {
            shape.verdict = Err(NoCache::SystemSchema);
            return shape;
        }
        None => default_ttl,
    };
    let mut tables = Vec::with_capacity(qualified.len());
    for q in &qualified {
        match gens.table(q) {
            Some(t) => tables.push(t),
            None => {
                shape.verdict = Err(NoCache::Untracked);
                return shape;
            }
        }
    }
    shape.tables = tables.into_boxed_slice();
    shape.verdict = Ok(ttl);
    shape
}

fn analyse_write(schema: Option<&[u8]>, sql: &[u8], insert: bool, gens: &Generations) -> WriteSet {
    let unknown = WriteSet {
        tables: Vec::new(),
        unknown: true,
    };
    let names = match insert.then(|| insert_target(sql)).flatten() {
        Some(t) => vec![t],
        None => match analyze::tables(sql) {
            Ok(names) => names,
            Err(_) => return unknown,
        },
    };
    if names.is_empty() {
        return unknown;
    }
    let mut tables = Vec::with_capacity(names.len());
    for n in &names {
        match qualify(schema, n).and_then(|q| gens.table(&q)) {
            Some(t) => tables.push(t),
            None => return unknown,
        }
    }
    WriteSet {
        tables,
        unknown: false,
    }
}

/// The table an `INSERT`/`REPLACE` writes: `[LOW_PRIORITY|DELAYED|HIGH_PRIORITY] [IGNORE]
/// [INTO] name`, unquoted, `db.table` when qualified. None if the head is anything else.
pub fn insert_target(sql: &[u8]) -> Option<String> {
    const SKIP: [&[u8]; 6] = [
        b"INSERT",
        b"REPLACE",
        b"LOW_PRIORITY",
        b"DELAYED",
        b"HIGH_PRIORITY",
        b"IGNORE",
    ];
    let mut i = 0;
    let mut words = 0;
    let mut name = String::new();
    loop {
        while i < sql.len() {
            let n = super::key::separator_len(sql, i);
            if n == 0 {
                break;
            }
            i += n;
        }
        let c = *sql.get(i)?;
        let part = if c == b'`' {
            let end = i + 1 + sql[i + 1..].iter().position(|&b| b == b'`')?;
            let p = std::str::from_utf8(&sql[i + 1..end]).ok()?.to_owned();
            i = end + 1;
            p
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            let len = sql[i..]
                .iter()
                .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80)
                .count();
            let w = &sql[i..i + len];
            i += len;
            words += 1;
            if name.is_empty()
                && (SKIP.iter().any(|k| k.eq_ignore_ascii_case(w))
                    || (words > 1 && w.eq_ignore_ascii_case(b"INTO")))
            {
                continue;
            }
            std::str::from_utf8(w).ok()?.to_owned()
        } else {
            return None;
        };
        name.push_str(&part);
        if sql.get(i) == Some(&b'.') && !name.contains('.') {
            name.push('.');
            i += 1;
            continue;
        }
        return (!name.is_empty() && !name.ends_with('.')).then_some(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(toml_like: &[CacheRule]) -> Vec<Rule> {
        toml_like
            .iter()
            .map(|r| Rule::compile(r).unwrap())
            .collect()
    }

    #[test]
    fn read_shapes_resolve_tables_and_apply_rules() {
        let g = Generations::default();
        let shapes = Shapes::default();
        let ttl = Duration::from_secs(60);
        let s = shapes.read(
            Some(b"Shop"),
            "SELECT c FROM t WHERE id = ?",
            b"SELECT c FROM t WHERE id = 1",
            &[],
            ttl,
            &g,
        );
        assert_eq!(s.verdict, Ok(ttl));
        assert_eq!(&*s.tables[0].name, "shop.t");
        let again = shapes.read(
            Some(b"Shop"),
            "SELECT c FROM t WHERE id = ?",
            b"SELECT c FROM t WHERE id = 2",
            &[],
            ttl,
            &g,
        );
        assert!(Arc::ptr_eq(&s, &again), "analysed once per digest");
        let none = shapes.read(None, "SELECT c FROM t", b"SELECT c FROM t", &[], ttl, &g);
        assert_eq!(none.verdict, Err(NoCache::NoSchema));
        let sys = shapes.read(
            Some(b"shop"),
            "SELECT * FROM mysql.user",
            b"SELECT * FROM mysql.user",
            &[],
            ttl,
            &g,
        );
        assert_eq!(sys.verdict, Err(NoCache::SystemSchema));
        let r = rules(&[
            CacheRule {
                table: Some("cart".into()),
                digest: None,
                regex: None,
                ttl: None,
                never: true,
            },
            CacheRule {
                table: None,
                digest: None,
                regex: Some("information_schema".into()),
                ttl: Some(Duration::from_secs(5)),
                never: false,
            },
        ]);
        let g2 = Generations::default();
        let shapes = Shapes::default();
        let cart = shapes.read(
            Some(b"shop"),
            "SELECT * FROM cart",
            b"SELECT * FROM cart",
            &r,
            ttl,
            &g2,
        );
        assert_eq!(cart.verdict, Err(NoCache::Rule));
        let is = "SELECT * FROM information_schema.tables";
        let is = shapes.read(Some(b"shop"), is, is.as_bytes(), &r, ttl, &g2);
        assert_eq!(is.verdict, Ok(Duration::from_secs(5)));
    }

    #[test]
    fn write_shapes() {
        let g = Generations::default();
        let shapes = Shapes::default();
        let w = shapes.write(
            Some(b"shop"),
            "UPDATE t SET c = ? WHERE id = ?",
            b"UPDATE t SET c = 1 WHERE id = 1",
            false,
            &g,
        );
        assert!(!w.unknown);
        assert_eq!(&*w.tables[0].name, "shop.t");
        let multi = "UPDATE a JOIN other.b ON a.id = b.id SET a.c = 1";
        let w = shapes.write(Some(b"shop"), multi, multi.as_bytes(), false, &g);
        let names: Vec<&str> = w.tables.iter().map(|t| &*t.name).collect();
        assert_eq!(names, ["shop.a", "other.b"]);
        let w = shapes.write(
            Some(b"shop"),
            "DROP DATABASE x",
            b"DROP DATABASE x",
            false,
            &g,
        );
        assert!(w.unknown);
        // A batch past the parser's length limit still names its one target.
        let mut batch = String::from("INSERT IGNORE INTO `shop`.`log` (a) VALUES (0)");
        for i in 1..5000 {
            batch.push_str(&format!(",({i})"));
        }
        let w = shapes.write(
            Some(b"x"),
            "INSERT IGNORE INTO `shop`.`log` (a) VALUES (?)",
            batch.as_bytes(),
            true,
            &g,
        );
        assert!(!w.unknown);
        assert_eq!(&*w.tables[0].name, "shop.log");
    }

    #[test]
    fn insert_targets() {
        let t = |s: &str| insert_target(s.as_bytes());
        assert_eq!(t("INSERT INTO t VALUES (1)").as_deref(), Some("t"));
        assert_eq!(
            t("insert low_priority ignore into `a b`.c(x) select * from d").as_deref(),
            Some("a b.c")
        );
        assert_eq!(t("/* x */ REPLACE db.t SET a=1").as_deref(), Some("db.t"));
        assert_eq!(t("INSERT INTO `into` VALUES (1)").as_deref(), Some("into"));
        assert_eq!(t("INSERT INTO (1)"), None);
    }
}
