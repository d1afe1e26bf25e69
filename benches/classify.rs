//! Cost of the router's hot path (`classify`: lexer + flags + digest) on realistic shop
//! statements, next to a full sqlparser parse of the same text for comparison.
//!
//! Run: `cargo bench --bench classify -- --quick`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlproxy::router::analyze::VerdictCache;
use sqlproxy::router::classify::{classify_with, scan, LexMode};

const POINT_SELECT: &str = "SELECT c FROM sbtest1 WHERE id=4991";

const CONFIG_SELECT: &str = "SELECT `value` FROM `ps_configuration` WHERE `name` = 'PS_SHOP_ENABLE' \
     AND (`id_shop_group` IS NULL OR `id_shop_group` = 0) AND (`id_shop` IS NULL OR `id_shop` = 0) LIMIT 1";

/// A PrestaShop category listing (front office, 9 joins), about 2 KB.
const CATEGORY_LISTING: &str = "SELECT SQL_NO_CACHE p.*, product_shop.*, stock.out_of_stock, \
IFNULL(stock.quantity, 0) AS quantity, IFNULL(product_attribute_shop.id_product_attribute, 0) AS id_product_attribute, \
product_attribute_shop.minimal_quantity AS product_attribute_minimal_quantity, pl.`description`, pl.`description_short`, \
pl.`available_now`, pl.`available_later`, pl.`link_rewrite`, pl.`meta_description`, pl.`meta_keywords`, pl.`meta_title`, \
pl.`name`, image_shop.`id_image` id_image, il.`legend` as legend, m.`name` AS manufacturer_name, cl.`name` AS category_default, \
DATEDIFF(product_shop.`date_add`, DATE_SUB('2026-11-25 00:00:00', INTERVAL 20 DAY)) > 0 AS new, product_shop.price AS orderprice \
FROM `ps_category_product` cp \
LEFT JOIN `ps_product` p ON p.`id_product` = cp.`id_product` \
INNER JOIN ps_product_shop product_shop ON (product_shop.id_product = p.id_product AND product_shop.id_shop = 1) \
LEFT JOIN `ps_product_attribute_shop` product_attribute_shop ON (p.`id_product` = product_attribute_shop.`id_product` \
  AND product_attribute_shop.`default_on` = 1 AND product_attribute_shop.id_shop=1) \
LEFT JOIN `ps_stock_available` stock ON (stock.id_product = p.id_product AND stock.id_product_attribute = 0 \
  AND stock.id_shop = 1 AND stock.id_shop_group = 0) \
LEFT JOIN `ps_category_lang` cl ON (product_shop.`id_category_default` = cl.`id_category` AND cl.`id_lang` = 1 AND cl.id_shop = 1) \
LEFT JOIN `ps_product_lang` pl ON (p.`id_product` = pl.`id_product` AND pl.`id_lang` = 1 AND pl.id_shop = 1) \
LEFT JOIN `ps_image_shop` image_shop ON (image_shop.`id_product` = p.`id_product` AND image_shop.cover=1 AND image_shop.id_shop=1) \
LEFT JOIN `ps_image_lang` il ON (image_shop.`id_image` = il.`id_image` AND il.`id_lang` = 1) \
LEFT JOIN `ps_manufacturer` m ON m.`id_manufacturer` = p.`id_manufacturer` \
WHERE product_shop.`id_shop` = 1 AND cp.`id_category` = 3 AND product_shop.`active` = 1 \
AND product_shop.`visibility` IN ('both', 'catalog') AND p.`id_product` IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12) \
ORDER BY cp.`position` ASC LIMIT 0,12";

/// About fifteen statements a shop sends, in rough order of frequency.
fn corpus() -> Vec<&'static str> {
    vec![
        POINT_SELECT,
        CONFIG_SELECT,
        CATEGORY_LISTING,
        "SELECT c FROM sbtest1 WHERE id BETWEEN 5 AND 104 ORDER BY c",
        "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 5 AND 104",
        "UPDATE sbtest1 SET k=k+1 WHERE id=5",
        "INSERT INTO `ps_connections` (`id_guest`, `id_shop`, `id_shop_group`, `date_add`, `http_referer`, `ip_address`) \
         VALUES (12, 1, 1, '2026-11-25 10:00:00', '', 2130706433)",
        "SELECT LAST_INSERT_ID();",
        "SELECT SQL_CALC_FOUND_ROWS o.`id_order` FROM `ps_orders` o WHERE o.`id_customer` = 2 LIMIT 0, 20",
        "SELECT * FROM `ps_cart` WHERE `id_cart` = 42 FOR UPDATE",
        "SET NAMES utf8mb4",
        "START TRANSACTION",
        "COMMIT",
        "SELECT /* sqlproxy:replica */ `id_lang`, `iso_code` FROM `ps_lang` WHERE `active` = 1",
        "DELETE FROM `ps_cart_product` WHERE `id_cart` = 42 AND `id_product` = 7 AND `id_product_attribute` = 0",
    ]
}

fn bench(c: &mut Criterion) {
    let cache = VerdictCache::new(1024);
    let dialect = MySqlDialect {};
    // The listing must be what the bench claims: a ~2 KB plain read the lexer decides alone.
    let listing = scan(CATEGORY_LISTING.as_bytes());
    assert!(
        listing.all_reads && CATEGORY_LISTING.len() > 1800,
        "{listing:?}"
    );
    for (name, sql) in [
        ("point_select", POINT_SELECT),
        ("config_select", CONFIG_SELECT),
        ("category_listing_2kb", CATEGORY_LISTING),
    ] {
        c.bench_function(&format!("classify/{name}"), |b| {
            b.iter(|| classify_with(black_box(sql.as_bytes()), LexMode::default(), &cache))
        });
        c.bench_function(&format!("sqlparser/{name}"), |b| {
            b.iter(|| Parser::parse_sql(&dialect, black_box(sql)))
        });
    }
    let all = corpus();
    c.bench_function("classify/corpus_15", |b| {
        b.iter(|| {
            for sql in &all {
                black_box(classify_with(
                    black_box(sql.as_bytes()),
                    LexMode::default(),
                    &cache,
                ));
            }
        })
    });
    c.bench_function("scan/corpus_15", |b| {
        b.iter(|| {
            for sql in &all {
                black_box(scan(black_box(sql.as_bytes())));
            }
        })
    });
    c.bench_function("sqlparser/corpus_15", |b| {
        b.iter(|| {
            for sql in &all {
                let _ = black_box(Parser::parse_sql(&dialect, black_box(sql)));
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
