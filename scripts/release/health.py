# A release's health check on the app server it just went live on: Django must answer
# through this server's nginx (127.0.0.1, the site's first domain as Host and TLS name) at
# PATH with an accepted status before SECONDS have passed; asked again every half second.
# Arguments: SCHEME (http or https) HOST PATH STATUS (a number, or "below-500") SECONDS.
# The certificate is not checked here (verify does that): this asks whether Django answers.
import http.client
import socket
import ssl
import sys
import time

scheme, host, path, wanted, seconds = sys.argv[1:6]


class LocalHTTPS(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 that names `host` in the handshake, as a browser would."""

    def connect(self):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", 443), self.timeout)
        self.sock = context.wrap_socket(raw, server_hostname=host)


def accepted(status):
    if wanted == "below-500":
        return status < 500
    return status == int(wanted)


deadline = time.monotonic() + float(seconds)
last = "no answer yet"
while True:
    try:
        if scheme == "https":
            conn = LocalHTTPS(host, 443, timeout=5)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", 80, timeout=5)
        conn.request("GET", path, headers={"Host": host, "User-Agent": "tandem-health"})
        status = conn.getresponse().status
        conn.close()
        if accepted(status):
            print(f"health: {scheme}://{host}{path} answered {status}", file=sys.stderr)
            sys.exit(0)
        last = f"answered {status}"
    except (OSError, http.client.HTTPException) as err:
        last = f"no answer ({err})"
    if time.monotonic() >= deadline:
        want = "a status below 500" if wanted == "below-500" else wanted
        print(
            f"health check failed: {scheme}://{host}{path} {last} after {seconds} s "
            f"(wanted {want})",
            file=sys.stderr,
        )
        sys.exit(1)
    time.sleep(0.5)
