#!/usr/bin/env python3
"""Generates entities.tsv, the labelled corpus for the detector precision/
recall test. Deterministic (fixed seed); rerun after editing:
    python3 testdata/gen_corpus.py > testdata/entities.tsv
Columns: kind (an Entity, or "none" for a hard negative), the exact text the
detector must match (empty for negatives), the line."""
import base64, json, random, string

R = random.Random(20240115)
rows = []
def pos(kind, val, tmpl):
    rows.append((kind, val, tmpl.replace("{}", val)))
def neg(text):
    rows.append(("none", "", text))

def luhn_complete(prefix, n):
    d = [int(c) for c in prefix] + [R.randint(0, 9) for _ in range(n - len(prefix) - 1)]
    for check in range(10):
        digits = d + [check]
        s = 0
        for i, x in enumerate(reversed(digits)):
            if i % 2 == 1:
                x *= 2
                if x > 9: x -= 9
            s += x
        if s % 10 == 0:
            return "".join(map(str, digits))
def luhn_break(num):
    last = (int(num[-1]) + 1) % 10
    return num[:-1] + str(last)
def group(num, sizes, sep):
    out, i = [], 0
    for s in sizes:
        out.append(num[i:i+s]); i += s
    return sep.join(out)

card_t = ["Card number {} was charged", "pay with {} please", "cc={}", '{"card":"{}"}', "The customer's card ({}) expired.",
          "VISA {} exp 12/27", "billing: {}", "refund to {} issued"]
for prefix, n, sizes in [("4", 16, [4,4,4,4]), ("51", 16, [4,4,4,4]), ("55", 16, [4,4,4,4]), ("2221", 16, [4,4,4,4]),
                         ("34", 15, [4,6,5]), ("37", 15, [4,6,5]), ("6011", 16, [4,4,4,4]), ("65", 16, [4,4,4,4]),
                         ("3530", 16, [4,4,4,4]), ("4", 13, [13]), ("36", 14, [14]), ("62", 16, [4,4,4,4])]:
    for sep in ["", " ", "-"]:
        num = luhn_complete(prefix, n)
        text = num if sep == "" or len(sizes) == 1 else group(num, sizes, sep)
        pos("credit_card", text, R.choice(card_t))
for _ in range(12):
    bad = luhn_break(luhn_complete("4", 16))
    neg(R.choice(["order {} shipped", "Invoice number {} is overdue", "tracking id {}", "ref {}"]).replace("{}", bad))
for _ in range(6):
    neg("account %s closed" % luhn_complete("9", 16))  # Luhn-valid, no known issuer

emails = ["jane.doe@example.com", "j.smith+news@mail.example.org", "ops-team@corp.example.co.uk", "x_y.z@sub.domain.io",
          "alice@example.net", "Bob.Marley@Music.Example.COM", "first.last@university.edu", "support@shop.example.de",
          "a1b2c3@example.info", "no-reply@notifications.example.com", "dev%test@example.org", "sales@example.travel"]
email_t = ["contact {} for help", "Email: {}", "<{}>", '"email": "{}"', "mailto:{}", "From: Jane <{}>", "cc {}, thanks"]
for e in emails:
    pos("email", e, R.choice(email_t))
    pos("email", e, R.choice(email_t))
for t in ["follow @jane_doe on social", "user@localhost is the default", "install pkg@1.2.3 now", "ping me @ noon",
          "the address is name(at)example.com", "git clone git@host:repo", "a@b", "decorator @property used",
          "email: jane.doe@example", "price is 5@3.00 each"]:
    neg(t)

phones = ["(212) 736-4821", "212-736-4821", "415.627.3980", "+1 646 555 0199", "+1 (312) 846-2310", "+44 20 7946 0321",
          "+33 1 42 68 53 00", "+49 30 901820", "+81 3-3224-5000", "+61 2 9374 4000", "+91 98765 43210", "617-253-1000",
          "(206) 684-4000", "+1-305-375-5000", "512 974 2000", "+34 912 345 678", "+39 06 4991 1", "+31 20 624 1111",
          "+46 8 785 00 00", "+1 202 456 1111"]
phone_t = ["call {} today", "Phone: {}", "tel {}", '"phone": "{}"', "reach me at {} after 5pm", "mobile {} (work)"]
for p in phones:
    pos("phone", p, R.choice(phone_t))
    pos("phone", p, R.choice(phone_t))
for t in ["Order #2127364821 shipped", "serial 123-456-7890 on the label", "build 20240115.1234 passed", "ISBN 978-3-16-148410-0",
          "meeting at 2024-01-15 10:30:00", "logged 12/25/2024 09:15", "part no. 555-0123", "the year 1999 and 2000",
          "lot 12 34 56", "SKU 4006381333931", "total 1,234,567.89 USD", "room 101-202", "ticket 415-627-3980 resolved",
          "range 100-200-300-400", "id 987654321 assigned", "zip 94103-1234", "pi is 3.14159265"]:
    neg(t)

ssn_t = ["SSN: {}", "social security number {}", "ssn={}", "her SSN is {} on file", '"ssn": "{}"']
for _ in range(20):
    area = R.choice([a for a in range(1, 900) if a != 666])
    s = "%03d-%02d-%04d" % (area, R.randint(1, 99), R.randint(1, 9999))
    if s in ("078-05-1120", "219-09-9999", "123-45-6789"): continue
    pos("us_ssn", s, R.choice(ssn_t))
for s in ["536 21 7740", "401 88 1023"]:
    pos("us_ssn", s, "SSN {}")
pos("us_ssn", "536217740", "SSN: {}")
for t in ["SSN 000-12-3456 is invalid", "ssn 666-12-3456 never issued", "ssn 912-34-5678 ITIN", "ssn 123-00-4567", "ssn 123-45-0000",
          "example 078-05-1120 from the wallet ad", "dial 123-45-67", "code 12-345-6789", "123456789 rows processed",
          "ref 123-456-789", "date 2024-01-15"]:
    neg(t)

def iban(cc, bban):
    rearr = bban + cc + "00"
    num = "".join(str(int(c, 36)) for c in rearr)
    check = 98 - int(num) % 97
    return "%s%02d%s" % (cc, check, bban)
def rand_bban(spec):
    return "".join(R.choice(string.digits if c == "n" else string.ascii_uppercase) for c in spec)
ib_specs = {"DE": "n"*18, "GB": "aaaa" + "n"*14, "FR": "n"*23, "NL": "aaaa" + "n"*10, "ES": "n"*20, "IT": "a" + "n"*22,
            "BE": "n"*12, "CH": "n"*17, "AT": "n"*16, "PL": "n"*24, "SE": "n"*20, "NO": "n"*11}
iban_t = ["IBAN {}", "transfer to {} by Friday", "account: {}", '"iban": "{}"']
for cc, spec in ib_specs.items():
    v = iban(cc, rand_bban(spec))
    pos("iban", v, R.choice(iban_t))
    spaced = " ".join(v[i:i+4] for i in range(0, len(v), 4))
    pos("iban", spaced, R.choice(iban_t))
for cc, spec in list(ib_specs.items())[:6]:
    v = iban(cc, rand_bban(spec))
    bad = v[:2] + ("%02d" % ((int(v[2:4]) + 1) % 100)) + v[4:]
    neg("IBAN %s (typo)" % bad)
for t in ["part AB12CDEF3456 in stock", "DE12 is the code", "flight GB22 delayed"]:
    neg(t)

ip_t = ["connect to {} now", "host={}", "from {}:5432", "client {} denied", "[{}]", '"ip": "{}"']
for _ in range(14):
    v = "%d.%d.%d.%d" % (R.choice([10, 172, 192, 203, 8, 100]), R.randint(0, 255), R.randint(0, 255), R.randint(1, 254))
    pos("ip", v, R.choice(ip_t).replace(":5432", " port 5432"))
for v in ["2001:db8::1", "fe80::1ff:fe23:4567:890a", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "::1", "2606:4700:4700::1111",
          "fd00:1234:5678::42"]:
    pos("ip", v, R.choice(["addr {} up", "client {} connected", "[{}]", "v6 {}"]))
for t in ["version 1.2.3.4 released", "v2.10.4.1", "release 10.0.0.1 notes", "OID 1.3.6.1.4.1", "time 10:30:45",
          "MAC 00:1a:2b:3c:4d:5e", "std::vector<int>", "ratio 3:2:1", "pkg 1.2.3", "256.1.1.1 is not an address",
          "build 4.19.0.25 ok", "uuid a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "sha deadbeefcafebabe0123456789abcdef"]:
    neg(t)

def b64(d): return base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=").decode()
for alg in ["HS256", "RS256", "ES256", "EdDSA", "HS512", "RS384", "none", "PS256"]:
    tok = b64({"alg": alg, "typ": "JWT"}) + "." + b64({"sub": str(R.randint(1, 10**9)), "iat": 1700000000 + R.randint(0, 10**6)}) + "."
    if alg != "none":
        tok += base64.urlsafe_b64encode(bytes(R.randint(0, 255) for _ in range(32))).rstrip(b"=").decode()
    pos("jwt", tok, R.choice(["Authorization: Bearer {}", "token {}", '"id_token":"{}"', "jwt={}"]).replace("Authorization: Bearer {}", "header Bearer {}"))
for t in ["eyJub3QiOiJhIGp3dCJ9 alone", "eyJhbGciOiJIUzI1NiJ9.notbase64!.x", "a.b.c file name", "archive.tar.gz",
          "eyJmb28iOiJiYXIifQ.eyJiYXoiOjF9.c2ln without alg"]:
    neg(t)

def rnd(chars, n): return "".join(R.choice(chars) for _ in range(n))
AL = string.ascii_letters + string.digits
for _ in range(3):
    pos("secret", "AKIA" + rnd(string.ascii_uppercase + "234567", 16), R.choice(["aws key {}", "AWS_ACCESS_KEY_ID {}", "id: {}"]))
    pos("secret", "ghp_" + rnd(AL, 36), R.choice(["github token {}", "GH {}", "use {} to push"]))
    pos("secret", "xoxb-%d-%d-%s" % (R.randint(10**10, 10**11), R.randint(10**10, 10**11), rnd(AL, 24)), "slack {}")
    pos("secret", "sk_live_" + rnd(AL, 24), R.choice(["stripe {}", "STRIPE {} (prod)"]))
pos("secret", "glpat-" + rnd(AL, 20), "gitlab {}")
pos("secret", "AIza" + rnd(AL + "_-", 35), "maps key {}")
pos("secret", "github_pat_" + rnd(AL + "_", 82), "fine-grained {}")
pos("secret", "-----BEGIN RSA PRIVATE KEY-----MIIEowIBAAKCAQEA" + rnd(AL + "+/", 80) + "-----END RSA PRIVATE KEY-----", "key: {}")
pos("secret", "-----BEGIN OPENSSH PRIVATE KEY-----\\n" + rnd(AL, 70) + "\\n-----END OPENSSH PRIVATE KEY-----", "{}")
for k in ["api_key", "API_KEY", "client_secret", "password", "db_password", "auth_token", "SECRET_KEY", "accessKey", "apiKey",
          "x-api-key", "private_key", "session_token"]:
    v = rnd(AL + "+/", R.randint(16, 40))
    op = R.choice(["=", ": ", " = ", '": "', "="])
    pos("secret", v, (k + op + "{}" + ('"' if op == '": "' else "")) if op != '": "' else '{"' + k + '": "{}"}')
pos("secret", "s3cr3tP4ss", "postgres://app:{}@db.example.com/prod")
pos("secret", "Xy9Pq2Lm7Rt4", "Authorization: Bearer {}")
for t in ["AKIAIOSFODNN7EXAMPLE", "password=changeme", "token_url=https://auth.example.com/token", "secret_name=prod-db-creds",
          "api_key=${API_KEY}", "password: ********", "public_key=MFkwEwYHKoZIzj0CAQ", "auth=enabled", "key_id=abcd1234efgh5678",
          "password_changed=2024-01-15", "token_count: 12345678", "primary key = customer_id", "the secret is love",
          "ghp_short", "csrf_token=a8f5f167f44f4964e6c998dee827110c", "sk_test_", "pk_live_1234567890abcdefghij",
          "password=password1"]:
    neg(t)

prose = ["The quick brown fox jumps over the lazy dog.", "Shipped 3 items on Monday; 2 more pending.", "See section 4.2 of the manual.",
         "Temperature rose to 21.5 degrees at 14:00.", "Release notes for 2.0: faster startup, fewer bugs.",
         "Meeting room B-12, floor 3.", "Quarterly revenue grew 12% to $4.5M.", "Use SELECT * FROM orders WHERE id = 42;",
         "The build took 3m12s on runner #7.", "ID a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 created.",
         "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 merged", "HTTP/1.1 200 OK", "Call the function f(x) = 2x + 1.",
         "Coordinates 48.8566, 2.3522", "Batch 2024-001-0042 processed", "Page 12 of 340", "Go 1.26.8 linux/amd64",
         "timestamp 1700000000123", "hash 5d41402abc4b2a76b9719d911017c592", "Chapter 11: 1984 and beyond"]
for t in prose:
    neg(t)

for kind, val, text in rows:
    assert "\t" not in text and "\n" not in text
    print("%s\t%s\t%s" % (kind, val, text))
