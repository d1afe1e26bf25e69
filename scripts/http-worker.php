<?php
// Demo page of a web worker behind the sqlproxy HTTP balancer.
// Run as a router script of PHP's built-in server, one per worker:
//
//   WORKER_NAME=wa1 php -S 127.0.0.1:8081 scripts/http-worker.php
//
// It names the worker that served the request and, when SQLPROXY_DSN is set
// (e.g. "mysql:host=127.0.0.1;port=3306;dbname=shop"), reads one row through
// the SQL proxy with PDO, the way PrestaShop's Db class does. /health answers
// the balancer's checks without touching the database.
//
// Environment: WORKER_NAME, SQLPROXY_DSN, SQLPROXY_USER, SQLPROXY_PASSWORD,
// SQLPROXY_QUERY (default: the node's server id and host name).

$worker = getenv('WORKER_NAME') ?: gethostname();
header('X-Worker: ' . $worker);

$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH);
if ($path === '/health') {
    header('Content-Type: text/plain');
    echo "ok\n";
    return true;
}

$row = null;
$error = null;
$dsn = getenv('SQLPROXY_DSN');
if ($dsn) {
    try {
        $pdo = new PDO($dsn, getenv('SQLPROXY_USER') ?: 'prestashop', getenv('SQLPROXY_PASSWORD') ?: '', [
            PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
            PDO::ATTR_TIMEOUT => 2,
        ]);
        $sql = getenv('SQLPROXY_QUERY') ?: 'SELECT @@server_id AS server_id, @@hostname AS node, NOW() AS now';
        $row = $pdo->query($sql)->fetch(PDO::FETCH_ASSOC) ?: [];
    } catch (Throwable $e) {
        $error = $e->getMessage();
        http_response_code(503);
    }
}

$h = fn($s) => htmlspecialchars((string) $s, ENT_QUOTES, 'UTF-8');
header('Content-Type: text/html; charset=utf-8');
?>
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>sqlproxy demo: <?= $h($worker) ?></title></head>
<body>
<h1>Served by worker <?= $h($worker) ?></h1>
<p>Client <?= $h($_SERVER['HTTP_X_FORWARDED_FOR'] ?? $_SERVER['REMOTE_ADDR'] ?? '?') ?>,
   scheme <?= $h($_SERVER['HTTP_X_FORWARDED_PROTO'] ?? 'http') ?>,
   host <?= $h($_SERVER['HTTP_X_FORWARDED_HOST'] ?? $_SERVER['HTTP_HOST'] ?? '?') ?>,
   via <?= $h($_SERVER['HTTP_VIA'] ?? '-') ?>.</p>
<?php if ($dsn === false || $dsn === ''): ?>
<p>SQLPROXY_DSN is not set: no database row.</p>
<?php elseif ($error !== null): ?>
<p>Database error: <?= $h($error) ?></p>
<?php else: ?>
<h2>Row read through the SQL proxy</h2>
<table border="1">
<?php foreach ($row as $k => $v): ?>
<tr><th><?= $h($k) ?></th><td class="<?= $h($k) ?>"><?= $h($v) ?></td></tr>
<?php endforeach; ?>
</table>
<?php endif; ?>
</body></html>
