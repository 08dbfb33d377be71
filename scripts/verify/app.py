import json, os, socket, http.client, ctypes
r = {}
host, port = os.environ.get('DATABASE_HOST', ''), int(os.environ.get('DATABASE_PORT', '5432'))
# A cluster's members are a comma-separated list (libpq's multi-host form): each must answer.
failed = []
for h in host.split(','):
    try:
        socket.create_connection((h, port), timeout=5).close()
    except Exception as e:
        failed.append(h + ': ' + str(e))
r['tcp'] = '; '.join(failed) or 'ok'

def recorded_migrations():
    # The rows the live release went live with, unless a .py file in it or in its recorded
    # migrations directories changed since (ctime: a copy cannot fake it): then Django decides.
    try:
        since = os.stat('RECORD').st_mtime
        with open('RECORD') as f:
            record = json.load(f)
        for top, deep in [('.', True)] + [(d, False) for d in record['dirs']]:
            for root, dirs, files in os.walk(top):
                for name in files:
                    if name.endswith('.py') and os.lstat(os.path.join(root, name)).st_ctime > since:
                        return None
                if not deep:
                    break
        return [tuple(row) for row in record['applied']]
    except Exception:
        return None

# Debian's libpq (libpq5, an app server package) through ctypes: a real login without
# importing a driver, which costs more than everything else here.
try:
    pq = ctypes.CDLL('libpq.so.5')
    pq.PQconnectdbParams.restype = ctypes.c_void_p
    pq.PQconnectdbParams.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]
    for f in ('PQstatus', 'PQresultStatus', 'PQntuples', 'PQnfields'):
        getattr(pq, f).argtypes = [ctypes.c_void_p]
    for f in ('PQerrorMessage', 'PQresultErrorMessage'):
        getattr(pq, f).restype, getattr(pq, f).argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    pq.PQexec.restype, pq.PQexec.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]
    pq.PQgetvalue.restype, pq.PQgetvalue.argtypes = ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    pq.PQclear.argtypes = pq.PQfinish.argtypes = [ctypes.c_void_p]
    params = {'host': host, 'port': str(port), 'dbname': os.environ['DATABASE_NAME'], 'user': os.environ['DATABASE_USER'],
              'password': os.environ['DATABASE_PASSWORD'], 'connect_timeout': '5'}
    keys = (ctypes.c_char_p * (len(params) + 1))(*[k.encode() for k in params], None)
    values = (ctypes.c_char_p * (len(params) + 1))(*[v.encode() for v in params.values()], None)
    c = pq.PQconnectdbParams(keys, values, 0)
    def rows(sql):
        res = pq.PQexec(c, sql.encode())
        try:
            if pq.PQresultStatus(res) != 2:
                raise RuntimeError((pq.PQresultErrorMessage(res) or b'').decode(errors='replace').strip())
            return [[(pq.PQgetvalue(res, i, j) or b'').decode() for j in range(pq.PQnfields(res))] for i in range(pq.PQntuples(res))]
        finally:
            pq.PQclear(res)
    try:
        if pq.PQstatus(c) != 0:
            raise RuntimeError((pq.PQerrorMessage(c) or b'').decode(errors='replace').strip())
        r['settings'] = [rows('SHOW ' + q)[0][0] for q in ('client_encoding', 'default_transaction_isolation', 'timezone')]
        wanted = recorded_migrations() if TANDEM_RECORD else None
        if wanted is not None:
            try:
                have = {tuple(row) for row in rows('SELECT app, name FROM django_migrations')}
            except RuntimeError:
                have = set()
            missing = ['%s.%s' % m for m in wanted if m not in have]
            r['migrations'] = 'unapplied: ' + ', '.join(missing) if missing else 'ok'
    finally:
        pq.PQfinish(c)
except Exception as e:
    r['login'] = str(e).strip()
r['http'] = {}
r['redirect'] = {}
for h in HOSTS + ['tandem-unknown-host.invalid']:
    try:
        c = http.client.HTTPConnection('127.0.0.1', 80, timeout=10)
        c.request('GET', '/', headers={'Host': h}); resp = c.getresponse()
        r['http'][h] = resp.status
        r['redirect'][h] = resp.getheader('Location') or ''
    except Exception as e:
        r['http'][h] = 'closed'
if TANDEM_HTTPS:
    # The site itself over 443, each name as SNI (the certificate is checked from outside).
    import ssl
    ctx = ssl._create_unverified_context()
    class Local(http.client.HTTPSConnection):
        def connect(self):
            self.sock = ctx.wrap_socket(socket.create_connection(('127.0.0.1', 443), timeout=10), server_hostname=self.host)
    r['https'] = {}
    # The first name's connection is kept for the static file below (one handshake less).
    kept = None
    for h in HOSTS:
        try:
            c = Local(h, 443, timeout=10)
            c.request('GET', '/'); resp = c.getresponse(); resp.read()
            r['https'][h] = resp.status
            if h == HOSTS[0]:
                kept = c
        except Exception as e:
            r['https'][h] = 'closed: ' + str(e)
# One of the live release's static files (the first by name of at most 256 KiB: verify reads
# it twice), asked through nginx the way a browser would: nginx must answer with the
# release's own file. None collected: nothing asked.
def first_static(top):
    for root, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if not name.startswith('.') and os.path.isfile(path) and os.path.getsize(path) <= 262144:
                return path
    return None
if not os.path.isdir(TANDEM_STATIC_DIR):
    r['static'] = 'the live release has no ' + TANDEM_STATIC_DIR
else:
    found = first_static(TANDEM_STATIC_DIR)
    if found is not None:
        from urllib.parse import quote
        path = TANDEM_STATIC_URL + quote(os.path.relpath(found, TANDEM_STATIC_DIR))
        try:
            if TANDEM_HTTPS:
                c = kept or Local(HOSTS[0], 443, timeout=10)
            else:
                c = http.client.HTTPConnection('127.0.0.1', 80, timeout=10)
            c.request('GET', path, headers={'Host': HOSTS[0]}); resp = c.getresponse()
            body = resp.read()
            with open(found, 'rb') as f:
                same = f.read() == body
            r['static'] = 'ok ' + path if resp.status == 200 and same else 'HTTP %s for %s%s' % (
                resp.status, path, '' if same else ', not the release\'s file')
        except Exception as e:
            r['static'] = '%s: %s' % (path, e)
url = os.environ.get('REDIS_URL', '')
if url:
    # The broker with the app's own credentials: AUTH, then PING, in Redis's protocol.
    from urllib.parse import urlsplit, unquote
    u = urlsplit(url)
    try:
        s = socket.create_connection((u.hostname, u.port or 6379), timeout=5)
        def cmd(*words):
            return ('*%d\r\n' % len(words) + ''.join('$%d\r\n%s\r\n' % (len(w.encode()), w) for w in words)).encode()
        s.sendall(cmd('AUTH', unquote(u.password or '')) + cmd('PING'))
        got = b''
        while got.count(b'\r\n') < 2:
            chunk = s.recv(256)
            if not chunk:
                break
            got += chunk
        s.close()
        r['broker'] = 'ok' if got.startswith(b'+OK') and b'+PONG' in got else got.decode(errors='replace').split('\r\n')[0]
    except Exception as e:
        r['broker'] = str(e)
print('json=' + json.dumps(r))
