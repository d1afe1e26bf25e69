//! The keyword table the classifier looks words up in.
//!
//! One sorted table answers two questions for a bare word in one binary search: does the word
//! play a role in classification (`Kw`), and is it upper-cased in the digest? Only reserved
//! words and statement keywords that are rarely column names are upper-cased, because the
//! digest must keep identifiers' case (`status`, `value`, `data`, `user` stay as written).
//! Function roles (`Kw::Fn*`) count only when the word is followed by `(`.

/// What a word means to the classifier. `Reserved` is a keyword with no role of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kw {
    /// Not a keyword: an identifier, or a non-word token.
    None,
    /// A reserved word without a classification role (upper-cased in the digest).
    Reserved,
    Alter,
    Analyze,
    Begin,
    Binary,
    Binlog,
    Call,
    Character,
    Charset,
    Check,
    Checksum,
    Commit,
    Connection,
    Count,
    Create,
    Data,
    /// `DATABASE(` / `SCHEMA(` (non-deterministic when called; a keyword otherwise).
    Database,
    Deallocate,
    Default,
    Delete,
    Desc,
    Describe,
    Diagnostics,
    Do,
    Drop,
    Engine,
    Errors,
    Execute,
    Explain,
    Export,
    Flush,
    /// `GET_LOCK(`: must run on the master and pins the session.
    FnGetLock,
    /// A function that must run on the master (locks, sequences, GTID waits).
    FnMaster,
    /// A function whose value differs per call or per connection (`NOW(`, `RAND(`, `VERSION(`).
    FnNonDet,
    /// `LAST_INSERT_ID(`, `FOUND_ROWS(`, `ROW_COUNT(`: about the previous statement.
    FnSameConn,
    For,
    Get,
    Global,
    Grant,
    Handler,
    Hard,
    Help,
    Id,
    In,
    Insert,
    Into,
    Kill,
    Load,
    Local,
    Lock,
    Master,
    Mode,
    Names,
    Next,
    NoWriteToBinlog,
    /// `CURRENT_TIMESTAMP`, `CURRENT_USER`, ...: non-deterministic even without `(`; also
    /// `SQL_NO_CACHE` and `PROCEDURE`, whose results are not to be kept either.
    NonDetWord,
    Not,
    Only,
    Optimize,
    Password,
    Prepare,
    Previous,
    Processlist,
    Profile,
    Profiles,
    Query,
    Read,
    Release,
    Rename,
    Repair,
    Replace,
    Replica,
    Revoke,
    Role,
    Rollback,
    Savepoint,
    Select,
    Session,
    Set,
    Share,
    Show,
    Slave,
    Soft,
    SqlCalcFoundRows,
    Start,
    Statement,
    Status,
    Table,
    Tables,
    Temporary,
    To,
    Transaction,
    Truncate,
    Unlock,
    Update,
    Use,
    User,
    Value,
    Values,
    Warnings,
    With,
    Work,
    Write,
    Xa,
    Xml,
}

/// The longest word in the keyword table; longer words are never looked up.
pub const MAX_KEYWORD_LEN: usize = 24;

/// A word upper-cased and packed big-endian into three u64s, zero-padded. Packed words
/// compare like their bytes and hash cheaply; a binary search with a `memcmp` per probe was
/// most of the classifier's time.
type Packed = [u64; 3];

/// Packs the first [`MAX_KEYWORD_LEN`] bytes of `word`, upper-cased.
const fn pack(word: &[u8]) -> Packed {
    let mut out = [0u64; 3];
    let mut i = 0;
    while i < word.len() && i < MAX_KEYWORD_LEN {
        out[i / 8] |= (word[i].to_ascii_uppercase() as u64) << (56 - 8 * (i % 8));
        i += 1;
    }
    out
}

/// Looks a word up in any letter case: its role, and whether the digest upper-cases it.
/// Words that cannot be keywords (too long, not starting with a letter) skip the search.
/// `word` is a lexer word, so it holds no NUL byte (which would pack like the padding).
pub fn lookup_ci(word: &[u8]) -> Option<(Kw, bool)> {
    if word.len() > MAX_KEYWORD_LEN || !word.first().is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    let key = pack(word);
    let mut at = slot(&key);
    // The index is never full, so an empty slot ends every probe sequence.
    loop {
        let entry = match INDEX.get(at).copied() {
            Some(0) | None => return None,
            Some(n) => KEYWORDS.get(usize::from(n) - 1)?,
        };
        if entry.0 == key {
            return Some((entry.1, entry.2));
        }
        at = (at + 1) & (SLOTS - 1);
    }
}

/// Slots of the open-addressing index: a power of two, about three times the table, so most
/// look-ups probe one or two slots.
const SLOTS: usize = 1024;

const fn slot(p: &Packed) -> usize {
    let h =
        (p[0] ^ p[1].rotate_left(21) ^ p[2].rotate_left(42)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 54) as usize & (SLOTS - 1)
}

/// Keyword index + 1 per slot (0 = empty), built at compile time from [`KEYWORDS`].
static INDEX: [u16; SLOTS] = build_index();

const fn build_index() -> [u16; SLOTS] {
    let mut index = [0u16; SLOTS];
    let mut i = 0;
    while i < KEYWORDS.len() {
        let mut at = slot(&KEYWORDS[i].0);
        while index[at] != 0 {
            at = (at + 1) & (SLOTS - 1);
        }
        index[at] = (i + 1) as u16;
        i += 1;
    }
    index
}

/// `(packed word, role, upper-case in digest)`, sorted by bytes (checked by a test) so the
/// list stays easy to read and to extend.
const KEYWORDS: &[(Packed, Kw, bool)] = &[
    (pack(b"ACCESSIBLE"), Kw::Reserved, true),
    (pack(b"ADD"), Kw::Reserved, true),
    (pack(b"ALL"), Kw::Reserved, true),
    (pack(b"ALTER"), Kw::Alter, true),
    (pack(b"ANALYZE"), Kw::Analyze, true),
    (pack(b"AND"), Kw::Reserved, true),
    (pack(b"AS"), Kw::Reserved, true),
    (pack(b"ASC"), Kw::Reserved, true),
    (pack(b"ASENSITIVE"), Kw::Reserved, true),
    (pack(b"BEFORE"), Kw::Reserved, true),
    (pack(b"BEGIN"), Kw::Begin, true),
    (pack(b"BENCHMARK"), Kw::FnNonDet, false),
    (pack(b"BETWEEN"), Kw::Reserved, true),
    (pack(b"BIGINT"), Kw::Reserved, true),
    (pack(b"BINARY"), Kw::Binary, true),
    (pack(b"BINLOG"), Kw::Binlog, false),
    (pack(b"BLOB"), Kw::Reserved, true),
    (pack(b"BOTH"), Kw::Reserved, true),
    (pack(b"BY"), Kw::Reserved, true),
    (pack(b"CALL"), Kw::Call, true),
    (pack(b"CASCADE"), Kw::Reserved, true),
    (pack(b"CASE"), Kw::Reserved, true),
    (pack(b"CHANGE"), Kw::Reserved, true),
    (pack(b"CHAR"), Kw::Reserved, true),
    (pack(b"CHARACTER"), Kw::Character, true),
    (pack(b"CHARSET"), Kw::Charset, false),
    (pack(b"CHECK"), Kw::Check, true),
    (pack(b"CHECKSUM"), Kw::Checksum, true),
    (pack(b"COLLATE"), Kw::Reserved, true),
    (pack(b"COLUMN"), Kw::Reserved, true),
    (pack(b"COMMIT"), Kw::Commit, true),
    (pack(b"CONDITION"), Kw::Reserved, true),
    (pack(b"CONNECTION"), Kw::Connection, false),
    (pack(b"CONNECTION_ID"), Kw::FnNonDet, false),
    (pack(b"CONSTRAINT"), Kw::Reserved, true),
    (pack(b"CONTINUE"), Kw::Reserved, true),
    (pack(b"CONVERT"), Kw::Reserved, true),
    (pack(b"COUNT"), Kw::Count, false),
    (pack(b"CREATE"), Kw::Create, true),
    (pack(b"CROSS"), Kw::Reserved, true),
    (pack(b"CURDATE"), Kw::FnNonDet, false),
    (pack(b"CURRENT_DATE"), Kw::NonDetWord, true),
    (pack(b"CURRENT_ROLE"), Kw::NonDetWord, true),
    (pack(b"CURRENT_TIME"), Kw::NonDetWord, true),
    (pack(b"CURRENT_TIMESTAMP"), Kw::NonDetWord, true),
    (pack(b"CURRENT_USER"), Kw::NonDetWord, true),
    (pack(b"CURSOR"), Kw::Reserved, true),
    (pack(b"CURTIME"), Kw::FnNonDet, false),
    (pack(b"DATA"), Kw::Data, false),
    (pack(b"DATABASE"), Kw::Database, true),
    (pack(b"DATABASES"), Kw::Reserved, true),
    (pack(b"DAY_HOUR"), Kw::Reserved, true),
    (pack(b"DAY_MICROSECOND"), Kw::Reserved, true),
    (pack(b"DAY_MINUTE"), Kw::Reserved, true),
    (pack(b"DAY_SECOND"), Kw::Reserved, true),
    (pack(b"DEALLOCATE"), Kw::Deallocate, true),
    (pack(b"DEC"), Kw::Reserved, true),
    (pack(b"DECIMAL"), Kw::Reserved, true),
    (pack(b"DECLARE"), Kw::Reserved, true),
    (pack(b"DEFAULT"), Kw::Default, true),
    (pack(b"DELAYED"), Kw::Reserved, true),
    (pack(b"DELETE"), Kw::Delete, true),
    (pack(b"DESC"), Kw::Desc, true),
    (pack(b"DESCRIBE"), Kw::Describe, true),
    (pack(b"DETERMINISTIC"), Kw::Reserved, true),
    (pack(b"DIAGNOSTICS"), Kw::Diagnostics, false),
    (pack(b"DISTINCT"), Kw::Reserved, true),
    (pack(b"DISTINCTROW"), Kw::Reserved, true),
    (pack(b"DIV"), Kw::Reserved, true),
    (pack(b"DO"), Kw::Do, true),
    (pack(b"DOUBLE"), Kw::Reserved, true),
    (pack(b"DROP"), Kw::Drop, true),
    (pack(b"DUAL"), Kw::Reserved, true),
    (pack(b"DUMPFILE"), Kw::Reserved, true),
    (pack(b"DUPLICATE"), Kw::Reserved, true),
    (pack(b"EACH"), Kw::Reserved, true),
    (pack(b"ELSE"), Kw::Reserved, true),
    (pack(b"ELSEIF"), Kw::Reserved, true),
    (pack(b"ENCLOSED"), Kw::Reserved, true),
    (pack(b"ENGINE"), Kw::Engine, false),
    (pack(b"ERRORS"), Kw::Errors, false),
    (pack(b"ESCAPED"), Kw::Reserved, true),
    (pack(b"EXCEPT"), Kw::Reserved, true),
    (pack(b"EXECUTE"), Kw::Execute, true),
    (pack(b"EXISTS"), Kw::Reserved, true),
    (pack(b"EXIT"), Kw::Reserved, true),
    (pack(b"EXPLAIN"), Kw::Explain, true),
    (pack(b"EXPORT"), Kw::Export, false),
    (pack(b"FALSE"), Kw::Reserved, true),
    (pack(b"FETCH"), Kw::Reserved, true),
    (pack(b"FLOAT"), Kw::Reserved, true),
    (pack(b"FLUSH"), Kw::Flush, true),
    (pack(b"FOR"), Kw::For, true),
    (pack(b"FORCE"), Kw::Reserved, true),
    (pack(b"FOREIGN"), Kw::Reserved, true),
    (pack(b"FOUND_ROWS"), Kw::FnSameConn, false),
    (pack(b"FROM"), Kw::Reserved, true),
    (pack(b"FULLTEXT"), Kw::Reserved, true),
    (pack(b"GET"), Kw::Get, false),
    (pack(b"GET_LOCK"), Kw::FnGetLock, false),
    (pack(b"GLOBAL"), Kw::Global, true),
    (pack(b"GRANT"), Kw::Grant, true),
    (pack(b"GROUP"), Kw::Reserved, true),
    (pack(b"HANDLER"), Kw::Handler, true),
    (pack(b"HARD"), Kw::Hard, false),
    (pack(b"HAVING"), Kw::Reserved, true),
    (pack(b"HELP"), Kw::Help, true),
    (pack(b"HIGH_PRIORITY"), Kw::Reserved, true),
    (pack(b"HOUR_MICROSECOND"), Kw::Reserved, true),
    (pack(b"HOUR_MINUTE"), Kw::Reserved, true),
    (pack(b"HOUR_SECOND"), Kw::Reserved, true),
    (pack(b"ID"), Kw::Id, false),
    (pack(b"IF"), Kw::Reserved, true),
    (pack(b"IGNORE"), Kw::Reserved, true),
    (pack(b"IN"), Kw::In, true),
    (pack(b"INDEX"), Kw::Reserved, true),
    (pack(b"INFILE"), Kw::Reserved, true),
    (pack(b"INNER"), Kw::Reserved, true),
    (pack(b"INOUT"), Kw::Reserved, true),
    (pack(b"INSENSITIVE"), Kw::Reserved, true),
    (pack(b"INSERT"), Kw::Insert, true),
    (pack(b"INT"), Kw::Reserved, true),
    (pack(b"INTEGER"), Kw::Reserved, true),
    (pack(b"INTERSECT"), Kw::Reserved, true),
    (pack(b"INTERVAL"), Kw::Reserved, true),
    (pack(b"INTO"), Kw::Into, true),
    (pack(b"IS"), Kw::Reserved, true),
    (pack(b"IS_FREE_LOCK"), Kw::FnMaster, false),
    (pack(b"IS_USED_LOCK"), Kw::FnMaster, false),
    (pack(b"ITERATE"), Kw::Reserved, true),
    (pack(b"JOIN"), Kw::Reserved, true),
    (pack(b"KEY"), Kw::Reserved, true),
    (pack(b"KEYS"), Kw::Reserved, true),
    (pack(b"KILL"), Kw::Kill, true),
    (pack(b"LASTVAL"), Kw::FnMaster, false),
    (pack(b"LAST_INSERT_ID"), Kw::FnSameConn, false),
    (pack(b"LEADING"), Kw::Reserved, true),
    (pack(b"LEAVE"), Kw::Reserved, true),
    (pack(b"LEFT"), Kw::Reserved, true),
    (pack(b"LIKE"), Kw::Reserved, true),
    (pack(b"LIMIT"), Kw::Reserved, true),
    (pack(b"LINEAR"), Kw::Reserved, true),
    (pack(b"LINES"), Kw::Reserved, true),
    (pack(b"LOAD"), Kw::Load, true),
    (pack(b"LOAD_FILE"), Kw::FnNonDet, false),
    (pack(b"LOCAL"), Kw::Local, false),
    (pack(b"LOCALTIME"), Kw::NonDetWord, true),
    (pack(b"LOCALTIMESTAMP"), Kw::NonDetWord, true),
    (pack(b"LOCK"), Kw::Lock, true),
    (pack(b"LONGBLOB"), Kw::Reserved, true),
    (pack(b"LONGTEXT"), Kw::Reserved, true),
    (pack(b"LOOP"), Kw::Reserved, true),
    (pack(b"LOW_PRIORITY"), Kw::Reserved, true),
    (pack(b"MASTER"), Kw::Master, false),
    (pack(b"MASTER_GTID_WAIT"), Kw::FnMaster, false),
    (pack(b"MASTER_POS_WAIT"), Kw::FnMaster, false),
    (pack(b"MATCH"), Kw::Reserved, true),
    (pack(b"MAXVALUE"), Kw::Reserved, true),
    (pack(b"MEDIUMBLOB"), Kw::Reserved, true),
    (pack(b"MEDIUMINT"), Kw::Reserved, true),
    (pack(b"MEDIUMTEXT"), Kw::Reserved, true),
    (pack(b"MINUTE_MICROSECOND"), Kw::Reserved, true),
    (pack(b"MINUTE_SECOND"), Kw::Reserved, true),
    (pack(b"MOD"), Kw::Reserved, true),
    (pack(b"MODE"), Kw::Mode, false),
    (pack(b"MODIFIES"), Kw::Reserved, true),
    (pack(b"NAMES"), Kw::Names, true),
    (pack(b"NATURAL"), Kw::Reserved, true),
    (pack(b"NEXT"), Kw::Next, false),
    (pack(b"NEXTVAL"), Kw::FnMaster, false),
    (pack(b"NOT"), Kw::Not, true),
    (pack(b"NOW"), Kw::FnNonDet, false),
    (pack(b"NO_WRITE_TO_BINLOG"), Kw::NoWriteToBinlog, true),
    (pack(b"NULL"), Kw::Reserved, true),
    (pack(b"NUMERIC"), Kw::Reserved, true),
    (pack(b"OFFSET"), Kw::Reserved, true),
    (pack(b"ON"), Kw::Reserved, true),
    (pack(b"ONLY"), Kw::Only, false),
    (pack(b"OPTIMIZE"), Kw::Optimize, true),
    (pack(b"OPTION"), Kw::Reserved, true),
    (pack(b"OPTIONALLY"), Kw::Reserved, true),
    (pack(b"OR"), Kw::Reserved, true),
    (pack(b"ORDER"), Kw::Reserved, true),
    (pack(b"OUT"), Kw::Reserved, true),
    (pack(b"OUTER"), Kw::Reserved, true),
    (pack(b"OUTFILE"), Kw::Reserved, true),
    (pack(b"OVER"), Kw::Reserved, true),
    (pack(b"PARTITION"), Kw::Reserved, true),
    (pack(b"PASSWORD"), Kw::Password, false),
    (pack(b"PRECISION"), Kw::Reserved, true),
    (pack(b"PREPARE"), Kw::Prepare, true),
    (pack(b"PREVIOUS"), Kw::Previous, false),
    (pack(b"PRIMARY"), Kw::Reserved, true),
    (pack(b"PROCEDURE"), Kw::NonDetWord, true),
    (pack(b"PROCESSLIST"), Kw::Processlist, false),
    (pack(b"PROFILE"), Kw::Profile, false),
    (pack(b"PROFILES"), Kw::Profiles, false),
    (pack(b"PURGE"), Kw::Reserved, true),
    (pack(b"QUERY"), Kw::Query, false),
    (pack(b"RAND"), Kw::FnNonDet, false),
    (pack(b"RANDOM_BYTES"), Kw::FnNonDet, false),
    (pack(b"RANGE"), Kw::Reserved, true),
    (pack(b"READ"), Kw::Read, true),
    (pack(b"READS"), Kw::Reserved, true),
    (pack(b"REAL"), Kw::Reserved, true),
    (pack(b"RECURSIVE"), Kw::Reserved, true),
    (pack(b"REFERENCES"), Kw::Reserved, true),
    (pack(b"REGEXP"), Kw::Reserved, true),
    (pack(b"RELEASE"), Kw::Release, true),
    (pack(b"RELEASE_ALL_LOCKS"), Kw::FnMaster, false),
    (pack(b"RELEASE_LOCK"), Kw::FnMaster, false),
    (pack(b"RENAME"), Kw::Rename, true),
    (pack(b"REPAIR"), Kw::Repair, true),
    (pack(b"REPEAT"), Kw::Reserved, true),
    (pack(b"REPLACE"), Kw::Replace, true),
    (pack(b"REPLICA"), Kw::Replica, false),
    (pack(b"REQUIRE"), Kw::Reserved, true),
    (pack(b"RESIGNAL"), Kw::Reserved, true),
    (pack(b"RESTRICT"), Kw::Reserved, true),
    (pack(b"RETURN"), Kw::Reserved, true),
    (pack(b"RETURNING"), Kw::Reserved, true),
    (pack(b"REVOKE"), Kw::Revoke, true),
    (pack(b"RIGHT"), Kw::Reserved, true),
    (pack(b"RLIKE"), Kw::Reserved, true),
    (pack(b"ROLE"), Kw::Role, false),
    (pack(b"ROLLBACK"), Kw::Rollback, true),
    (pack(b"ROWS"), Kw::Reserved, true),
    (pack(b"ROW_COUNT"), Kw::FnSameConn, false),
    (pack(b"SAVEPOINT"), Kw::Savepoint, true),
    (pack(b"SCHEMA"), Kw::Database, true),
    (pack(b"SCHEMAS"), Kw::Reserved, true),
    (pack(b"SECOND_MICROSECOND"), Kw::Reserved, true),
    (pack(b"SELECT"), Kw::Select, true),
    (pack(b"SENSITIVE"), Kw::Reserved, true),
    (pack(b"SEPARATOR"), Kw::Reserved, true),
    (pack(b"SESSION"), Kw::Session, true),
    (pack(b"SESSION_USER"), Kw::FnNonDet, false),
    (pack(b"SET"), Kw::Set, true),
    (pack(b"SETVAL"), Kw::FnMaster, false),
    (pack(b"SHARE"), Kw::Share, true),
    (pack(b"SHOW"), Kw::Show, true),
    (pack(b"SIGNAL"), Kw::Reserved, true),
    (pack(b"SLAVE"), Kw::Slave, false),
    (pack(b"SLEEP"), Kw::FnNonDet, false),
    (pack(b"SMALLINT"), Kw::Reserved, true),
    (pack(b"SOFT"), Kw::Soft, false),
    (pack(b"SPATIAL"), Kw::Reserved, true),
    (pack(b"SPECIFIC"), Kw::Reserved, true),
    (pack(b"SQL"), Kw::Reserved, true),
    (pack(b"SQLEXCEPTION"), Kw::Reserved, true),
    (pack(b"SQLSTATE"), Kw::Reserved, true),
    (pack(b"SQLWARNING"), Kw::Reserved, true),
    (pack(b"SQL_BIG_RESULT"), Kw::Reserved, true),
    (pack(b"SQL_BUFFER_RESULT"), Kw::Reserved, true),
    (pack(b"SQL_CACHE"), Kw::Reserved, true),
    (pack(b"SQL_CALC_FOUND_ROWS"), Kw::SqlCalcFoundRows, true),
    (pack(b"SQL_NO_CACHE"), Kw::NonDetWord, true),
    (pack(b"SQL_SMALL_RESULT"), Kw::Reserved, true),
    (pack(b"SSL"), Kw::Reserved, true),
    (pack(b"START"), Kw::Start, true),
    (pack(b"STARTING"), Kw::Reserved, true),
    (pack(b"STATEMENT"), Kw::Statement, false),
    (pack(b"STATUS"), Kw::Status, false),
    (pack(b"STRAIGHT_JOIN"), Kw::Reserved, true),
    (pack(b"SYSDATE"), Kw::FnNonDet, false),
    (pack(b"SYSTEM_USER"), Kw::FnNonDet, false),
    (pack(b"SYS_GUID"), Kw::FnNonDet, false),
    (pack(b"TABLE"), Kw::Table, true),
    (pack(b"TABLES"), Kw::Tables, true),
    (pack(b"TEMPORARY"), Kw::Temporary, true),
    (pack(b"TERMINATED"), Kw::Reserved, true),
    (pack(b"THEN"), Kw::Reserved, true),
    (pack(b"TINYBLOB"), Kw::Reserved, true),
    (pack(b"TINYINT"), Kw::Reserved, true),
    (pack(b"TINYTEXT"), Kw::Reserved, true),
    (pack(b"TO"), Kw::To, true),
    (pack(b"TRAILING"), Kw::Reserved, true),
    (pack(b"TRANSACTION"), Kw::Transaction, true),
    (pack(b"TRIGGER"), Kw::Reserved, true),
    (pack(b"TRUE"), Kw::Reserved, true),
    (pack(b"TRUNCATE"), Kw::Truncate, true),
    (pack(b"UNDO"), Kw::Reserved, true),
    (pack(b"UNION"), Kw::Reserved, true),
    (pack(b"UNIQUE"), Kw::Reserved, true),
    (pack(b"UNIX_TIMESTAMP"), Kw::FnNonDet, false),
    (pack(b"UNLOCK"), Kw::Unlock, true),
    (pack(b"UNSIGNED"), Kw::Reserved, true),
    (pack(b"UPDATE"), Kw::Update, true),
    (pack(b"USAGE"), Kw::Reserved, true),
    (pack(b"USE"), Kw::Use, true),
    (pack(b"USER"), Kw::User, false),
    (pack(b"USING"), Kw::Reserved, true),
    (pack(b"UTC_DATE"), Kw::NonDetWord, true),
    (pack(b"UTC_TIME"), Kw::NonDetWord, true),
    (pack(b"UTC_TIMESTAMP"), Kw::NonDetWord, true),
    (pack(b"UUID"), Kw::FnNonDet, false),
    (pack(b"UUID_SHORT"), Kw::FnNonDet, false),
    (pack(b"VALUE"), Kw::Value, false),
    (pack(b"VALUES"), Kw::Values, true),
    (pack(b"VARBINARY"), Kw::Reserved, true),
    (pack(b"VARCHAR"), Kw::Reserved, true),
    (pack(b"VARYING"), Kw::Reserved, true),
    (pack(b"VERSION"), Kw::FnNonDet, false),
    (pack(b"WARNINGS"), Kw::Warnings, false),
    (pack(b"WHEN"), Kw::Reserved, true),
    (pack(b"WHERE"), Kw::Reserved, true),
    (pack(b"WHILE"), Kw::Reserved, true),
    (pack(b"WINDOW"), Kw::Reserved, true),
    (pack(b"WITH"), Kw::With, true),
    (pack(b"WORK"), Kw::Work, true),
    (pack(b"WRITE"), Kw::Write, true),
    (pack(b"XA"), Kw::Xa, true),
    (pack(b"XML"), Kw::Xml, false),
    (pack(b"XOR"), Kw::Reserved, true),
    (pack(b"YEAR_MONTH"), Kw::Reserved, true),
    (pack(b"ZEROFILL"), Kw::Reserved, true),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted() {
        for pair in KEYWORDS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{:?} >= {:?}", pair[0].0, pair[1].0);
        }
        // packing keeps byte order, prefixes first
        assert!(pack(b"IN") < pack(b"INDEX"));
        assert!(pack(b"SQL") < pack(b"SQL_CALC_FOUND_ROWS"));
        assert!(pack(b"SQLWARNING") < pack(b"SQL_BIG_RESULT"));
        assert_eq!(pack(b"select"), pack(b"SELECT"));
        assert!(KEYWORDS.len() * 2 < SLOTS);
    }

    #[test]
    fn every_keyword_is_found() {
        for (packed, kw, up) in KEYWORDS {
            let bytes: Vec<u8> = packed
                .iter()
                .flat_map(|w| w.to_be_bytes())
                .take_while(|&b| b != 0)
                .collect();
            assert_eq!(
                lookup_ci(&bytes),
                Some((*kw, *up)),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn lookup_finds_roles() {
        assert_eq!(lookup_ci(b"SELECT"), Some((Kw::Select, true)));
        assert_eq!(lookup_ci(b"select"), Some((Kw::Select, true)));
        assert_eq!(lookup_ci(b"STATUS"), Some((Kw::Status, false)));
        assert_eq!(lookup_ci(b"last_insert_id"), Some((Kw::FnSameConn, false)));
        assert_eq!(
            lookup_ci(b"NO_WRITE_TO_BINLOG"),
            Some((Kw::NoWriteToBinlog, true))
        );
        assert_eq!(lookup_ci(b"FROM"), Some((Kw::Reserved, true)));
        assert_eq!(lookup_ci(b"SBTEST1"), None);
        assert_eq!(lookup_ci(b"SELECTX"), None);
        assert_eq!(lookup_ci(b""), None);
        assert_eq!(lookup_ci(b"_utf8mb4"), None);
        assert_eq!(lookup_ci(&[b'a'; 100]), None);
    }
}
