"""A local WS-Man endpoint that answers like a Hyper-V host, for tests.

There is no Windows here, so only the Windows side is simulated: the real
pywinrm client, requests, the HTTP authentication and the SOAP messages are
exercised for real. Authentication is what a stock Windows host does: NTLM
(HTTP `Negotiate`, the acceptor is pyspnego's own NTLM server, checking the
user and password from an `NTLM_USER_FILE` this server writes) with WinRM
message encryption over http ([MS-WSMV] 2.2.9.1: each SOAP body sealed with
the NTLM session key inside a `multipart/encrypted` body; an unencrypted SOAP
body over http is refused, as `AllowUnencrypted = false` does), or over https
(TLS with a certificate the test makes; NTLM then carries the channel binding
of that certificate, which the acceptor checks). `auth="basic"` is the old
Basic-over-http host, for the opt-in path. The server implements the five WinRM shell actions pywinrm uses
(Create shell, Command, Receive, Signal, Delete), decodes the
`-encodedcommand` script (UTF-16LE, base64) and, for a script that calls
`Get-VM`, prints the JSON the inventory script would print on a host with
`vms`. Any other script fails the way PowerShell does for an unknown command.

Failure modes for tests: `ps_error` (PowerShell error record as CLIXML on
stderr, exit code 1), wrong credentials (HTTP 401), `delay` (seconds to sleep
before answering an action, to provoke client timeouts), `hang` (the command
never finishes: every Receive ends in a WS-Man operation-timeout fault).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import ssl
import struct
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import spnego
from spnego.channel_bindings import GssChannelBindings

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
}
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
ACTIONS = {
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create": "Create",
    SHELL_URI + "/Command": "Command",
    SHELL_URI + "/Receive": "Receive",
    SHELL_URI + "/Signal": "Signal",
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete": "Delete",
}
CHUNK = 4096  # stdout bytes per Receive answer: big outputs take several Receives
OPERATION_TIMEOUT_FAULT = 2150858793
ENCRYPTED_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
BOUNDARY = b"--Encrypted Boundary"


@dataclass
class FakeVm:
    """One VM as Get-VM / Get-VMHardDiskDrive / Get-VHD would describe it."""

    name: str
    id: str
    state: str = "Running"
    computer: str = "HV01"
    disks: list[tuple[str, int]] = field(default_factory=list)  # (VHD path, virtual size)


@dataclass
class Command:
    stdout: bytes
    stderr: bytes
    exit_code: int
    sent: int = 0  # stdout bytes already delivered


class FakeHyperV:
    """The fake host: its VMs, credentials and what it should do wrong."""

    def __init__(self, vms: list[FakeVm], user: str = "ferry", password: str = "s3cret", *,
                 auth: str = "ntlm", tls: ssl.SSLContext | None = None,
                 cert_der: bytes = b"") -> None:
        if auth not in ("ntlm", "basic"):
            raise ValueError(auth)
        self.vms = list(vms)
        self.user = user
        self.auth = auth
        self.tls = tls  # None: http
        self.cert_der = cert_der  # the TLS certificate, for NTLM's channel binding
        self._user_dir = tempfile.TemporaryDirectory(prefix="ntlm-users-")
        self.user_file = Path(self._user_dir.name) / "users"
        self.password = password
        # print one VM as a bare object, as `Get-VM | ConvertTo-Json` does
        self.single_object = False
        self.ps_error: str = ""  # when set: the script fails with this PowerShell error
        self.delay: dict[str, float] = {}  # action name -> seconds to sleep before answering
        self.hang = False
        self.scripts: list[str] = []  # decoded scripts received
        self.open_shells: dict[str, int] = {}  # shell id -> its WINRS_CODEPAGE
        self.requests = 0
        self.bodies: list[bytes] = []  # every request body as it crossed the wire
        self.authorizations: list[str] = []  # every Authorization header's scheme
        self.soap_in_clear = 0  # SOAP envelopes that arrived unencrypted over http (refused)
        self.encrypted = 0  # SOAP envelopes that arrived sealed
        self.logins: list[str] = []  # user names of completed logins
        self.commands: dict[str, Command] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def password(self) -> str:
        return self._password

    @password.setter
    def password(self, value: str) -> None:
        """The account's password; NTLM's acceptor reads it from the user file
        (Heimdal format DOMAIN:USER:PASSWORD, empty domain), set for the process in
        NTLM_USER_FILE by `start`."""
        self._password = value
        self.user_file.write_text(f":{self.user}:{value}\n")

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> FakeHyperV:
        fake = self
        self._old_user_file = os.environ.get("NTLM_USER_FILE")
        os.environ["NTLM_USER_FILE"] = str(self.user_file)  # pyspnego's acceptor reads it

        class Handler(WsmanHandler):
            host = fake

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a sleeping `delay` handler must not stall stop()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            if self._old_user_file is None:
                os.environ.pop("NTLM_USER_FILE", None)
            else:
                os.environ["NTLM_USER_FILE"] = self._old_user_file
        self._user_dir.cleanup()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def reset(self) -> None:
        """Back to a healthy host (fixtures share one server between tests)."""
        self.single_object = False
        self.ps_error = ""
        self.delay = {}
        self.hang = False
        self.scripts.clear()

    # -- what PowerShell would print -------------------------------------------
    def run(self, script: str, codepage: int = 437) -> Command:
        self.scripts.append(script)
        if self.ps_error:
            return Command(b"", clixml_error(self.ps_error), 1)
        if not re.search(r"\bGet-VM\b", script):
            word = script.strip().split()[0] if script.strip() else ""
            return Command(
                b"",
                clixml_error(
                    f"{word} : The term '{word}' is not recognized as the name of a cmdlet."
                ),
                1,
            )
        items = [
            {
                "Name": vm.name,
                "Id": vm.id,
                "State": vm.state,
                "ComputerName": vm.computer,
                "Disks": [
                    {"Name": re.split(r"[\\/]", path)[-1], "Path": path, "Size": size}
                    for path, size in vm.disks
                ],
            }
            for vm in self.vms
        ]
        doc: object = items[0] if self.single_object and len(items) == 1 else items
        text = json.dumps(doc, ensure_ascii=False) + "\r\n"
        # Windows writes stdout in the shell's code page unless the script switches
        # [Console]::OutputEncoding to UTF-8: with 437, names outside ASCII become "?".
        utf8 = codepage == 65001 or re.search(
            r"OutputEncoding\s*=\s*\[Text\.Encoding\]::UTF8", script
        )
        return Command(text.encode("utf-8" if utf8 else "cp437", errors="replace"), b"", 0)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 - stdlib signature
        """A client that gave up (a test's timeout) is no error of the host."""


def make_tls(directory: Path, host: str = "127.0.0.1") -> tuple[ssl.SSLContext, bytes, Path]:
    """A throw-away self-signed certificate for `host` (an IP address SAN, as a WinRM
    HTTPS listener on an address has): (server context, certificate DER, CA file PEM)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "HV01 WinRM")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = directory / "hv01.pem"
    key_pem = directory / "hv01.key"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_pem, key_pem)
    return context, cert.public_bytes(serialization.Encoding.DER), cert_pem


def clixml_error(message: str) -> bytes:
    """stderr as powershell.exe writes an error record when its output is redirected."""
    lines = [
        message,
        "At line:4 char:13",
        "+ $vms = @(Get-VM | ForEach-Object {",
        "+             ~~~~~~",
        "    + CategoryInfo          : NotSpecified: (:) [Get-VM], VirtualizationException",
        "    + FullyQualifiedErrorId : Unspecified,Microsoft.HyperV.PowerShell.Commands.GetVM",
    ]
    body = "".join(f'<S S="Error">{_escape(line)}_x000D__x000A_</S>' for line in lines)
    xml = (
        '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        f"{body}</Objs>"
    )
    return ("#< CLIXML\r\n" + xml).encode("utf-8")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def decode_command_line(command_line: str) -> str:
    """The script of `powershell ... -encodedcommand <base64 of UTF-16LE>`."""
    match = re.search(r"-(?:e|ec|enc|encodedcommand)\s+(\S+)", command_line, re.IGNORECASE)
    if not match:
        return command_line
    return base64.b64decode(match.group(1)).decode("utf-16-le")


class WsmanHandler(BaseHTTPRequestHandler):
    """POST /wsman: one SOAP 1.2 envelope in, one out."""

    host: FakeHyperV
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each run_ps costs ~180 ms of delayed ACKs

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def setup(self) -> None:
        """TLS (when the host has it) is negotiated here, in the connection's thread,
        so a client that does not speak it cannot stall the accept loop."""
        self.ntlm: spnego.ContextProxy | None = None  # this connection's NTLM context
        self.tls_failed = False
        if self.host.tls is not None:
            try:
                self.request.settimeout(5)
                self.request = self.host.tls.wrap_socket(self.request, server_side=True)
                self.request.settimeout(None)
            except (ssl.SSLError, OSError):
                self.tls_failed = True
        super().setup()

    def handle(self) -> None:
        if not self.tls_failed:
            super().handle()

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self.sealed = False
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        fake = self.host
        with fake._lock:
            fake.requests += 1
            fake.bodies.append(body)
            fake.authorizations.append(self.headers.get("Authorization", "").split(" ")[0])
        if fake.auth == "basic":
            if not self._basic_ok():
                self._challenge('Basic realm="WSMAN"')
                return
        elif not self._ntlm_ok():
            return
        if self.path.rstrip("/") != "/wsman":
            self._reply(404, b"")
            return
        content_type = self.headers.get("Content-Type", "")
        self.sealed = content_type.startswith("multipart/encrypted")
        if self.sealed:
            try:
                body = self._unseal(body)
            except Exception:  # noqa: BLE001 - a body that does not open is a bad request
                self._reply(400, b"")
                return
            with fake._lock:
                fake.encrypted += 1
        elif not body:
            self._reply(200, b"")  # pywinrm's empty POST that sets up the NTLM context
            return
        elif fake.auth == "ntlm" and fake.tls is None:
            # WinRM's AllowUnencrypted = false: over http a body must be sealed
            with fake._lock:
                fake.soap_in_clear += 1
            self._reply(401, b"")
            return
        try:
            envelope = ET.fromstring(body)
        except ET.ParseError:
            self._reply(400, b"")
            return
        action_uri = envelope.findtext("s:Header/a:Action", "", NS)
        action = ACTIONS.get(action_uri, "")
        message_id = envelope.findtext("s:Header/a:MessageID", "", NS)
        shell_id = envelope.findtext("s:Header/w:SelectorSet/w:Selector[@Name='ShellId']", "", NS)
        if action in fake.delay:
            time.sleep(fake.delay[action])
        if action == "Create":
            self._create(envelope, message_id)
        elif action == "Command":
            self._command(envelope, message_id, shell_id)
        elif action == "Receive":
            self._receive(envelope, message_id)
        elif action == "Signal":
            self._ok(message_id, "Signal", "<rsp:SignalResponse/>")
        elif action == "Delete":
            with fake._lock:
                fake.open_shells.pop(shell_id, None)
            self._ok(message_id, "Delete", "")
        else:
            self._fault(message_id, "ActionNotSupported", 2150858754, "unknown action")

    # -- authentication ----------------------------------------------------------
    def _challenge(self, value: str) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _basic_ok(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.host.user and password == self.host.password

    def _ntlm_ok(self) -> bool:
        """NTLM over HTTP Negotiate, one connection at a time (NTLM authenticates the
        connection): negotiate -> challenge (401) -> authenticate. Answers the 401s
        itself; True once this connection is authenticated."""
        if self.ntlm is not None and self.ntlm.complete:
            return True
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("negotiate", "ntlm") or not token:
            self.ntlm = None
            self._challenge("Negotiate")
            return False
        try:
            raw = base64.b64decode(token)
            if raw.startswith(b"NTLMSSP\0\x01\0\0\0") or self.ntlm is None:
                bindings = None
                if self.host.cert_der:  # [MS-NLMP] channel binding: the TLS certificate's hash
                    bindings = GssChannelBindings(application_data=b"tls-server-end-point:"
                                                  + hashlib.sha256(self.host.cert_der).digest())
                self.ntlm = spnego.server(protocol="ntlm", channel_bindings=bindings)
            out = self.ntlm.step(raw)
        except spnego.exceptions.SpnegoError:
            self.ntlm = None
            self._challenge("Negotiate")  # the login is refused: no second challenge
            return False
        if not self.ntlm.complete:
            self._challenge(f"Negotiate {base64.b64encode(out or b'').decode()}")
            return False
        with self.host._lock:
            self.host.logins.append(str(self.ntlm.client_principal))
        return True

    # -- message encryption ([MS-WSMV] 2.2.9.1.1) -----------------------------------
    def _unseal(self, body: bytes) -> bytes:
        """The SOAP envelope of a `multipart/encrypted` body, its length checked."""
        assert self.ntlm is not None
        parts = [p for p in body.split(BOUNDARY + b"\r\n") if p]
        header, payload = parts[0], parts[1]
        length = int(re.search(rb"Length=(\d+)", header).group(1))  # type: ignore[union-attr]
        payload = payload.removesuffix(BOUNDARY + b"--\r\n")
        payload = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
        sig_len = struct.unpack("<i", payload[:4])[0]
        signature, sealed = payload[4:4 + sig_len], payload[4 + sig_len:]
        clear = self.ntlm.unwrap(signature + sealed).data
        if len(clear) != length:
            raise ValueError("length mismatch")
        return clear

    def _seal(self, payload: bytes) -> bytes:
        assert self.ntlm is not None
        wrapped = self.ntlm.wrap(payload, encrypt=True).data
        signature, sealed = wrapped[:16], wrapped[16:]
        return (BOUNDARY + b"\r\n"
                + f"\tContent-Type: {ENCRYPTED_PROTOCOL}\r\n".encode()
                + b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
                + str(len(payload)).encode() + b"\r\n"
                + BOUNDARY + b"\r\n\tContent-Type: application/octet-stream\r\n"
                + struct.pack("<i", len(signature)) + signature + sealed
                + BOUNDARY + b"--\r\n")

    def _create(self, envelope: ET.Element, message_id: str) -> None:
        shell_id = str(uuid.uuid4()).upper()
        option = "s:Header/w:OptionSet/w:Option[@Name='WINRS_CODEPAGE']"
        codepage = int(envelope.findtext(option, "437", NS) or 437)
        with self.host._lock:
            self.host.open_shells[shell_id] = codepage
        body = (
            "<x:ResourceCreated><a:Address>http://127.0.0.1/wsman</a:Address>"
            "<a:ReferenceParameters><w:ResourceURI>"
            "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI>"
            f'<w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>'
            "</a:ReferenceParameters></x:ResourceCreated>"
            f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId></rsp:Shell>"
        )
        self._ok(
            message_id,
            "CreateResponse",
            body,
            ns_action="http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
        )

    def _command(self, envelope: ET.Element, message_id: str, shell_id: str) -> None:
        if shell_id not in self.host.open_shells:
            self._fault(message_id, "InvalidSelectors", 2150858843, "The shell was not found.")
            return
        line = envelope.findtext("s:Body/rsp:CommandLine/rsp:Command", "", NS)
        args = envelope.findtext("s:Body/rsp:CommandLine/rsp:Arguments", "", NS)
        command_id = str(uuid.uuid4()).upper()
        script = decode_command_line(f"{line} {args}")
        result = self.host.run(script, self.host.open_shells[shell_id])
        with self.host._lock:
            self.host.commands[command_id] = result
        self._ok(
            message_id,
            "CommandResponse",
            f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>",
        )

    def _receive(self, envelope: ET.Element, message_id: str) -> None:
        stream = envelope.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
        command_id = stream.get("CommandId", "") if stream is not None else ""
        command = self.host.commands.get(command_id)
        if command is None:
            self._fault(message_id, "InvalidSelectors", 2150858843, "The command was not found.")
            return
        if self.host.hang:
            timeout = envelope.findtext("s:Header/w:OperationTimeout", "PT1S", NS)
            seconds = float(re.sub(r"[^0-9.]", "", timeout) or 1)
            time.sleep(min(seconds, 5))
            self._fault(
                message_id,
                "TimedOut",
                OPERATION_TIMEOUT_FAULT,
                "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
            )
            return
        chunk = command.stdout[command.sent : command.sent + CHUNK]
        command.sent += len(chunk)
        done = command.sent >= len(command.stdout)
        parts = []
        if chunk:
            parts.append(
                f'<rsp:Stream Name="stdout" CommandId="{command_id}">'
                f"{base64.b64encode(chunk).decode()}</rsp:Stream>"
            )
        if done:
            parts.append(
                f'<rsp:Stream Name="stdout" CommandId="{command_id}" End="true"></rsp:Stream>'
            )
            if command.stderr:
                parts.append(
                    f'<rsp:Stream Name="stderr" CommandId="{command_id}">'
                    f"{base64.b64encode(command.stderr).decode()}</rsp:Stream>"
                )
            parts.append(
                f'<rsp:Stream Name="stderr" CommandId="{command_id}" End="true"></rsp:Stream>'
            )
            state = (
                f'<rsp:CommandState CommandId="{command_id}" State="{SHELL_URI}/CommandState/Done">'
                f"<rsp:ExitCode>{command.exit_code}</rsp:ExitCode></rsp:CommandState>"
            )
        else:
            state = f'<rsp:CommandState CommandId="{command_id}" State="{SHELL_URI}/CommandState/Running"/>'
        self._ok(
            message_id,
            "ReceiveResponse",
            f"<rsp:ReceiveResponse>{''.join(parts)}{state}</rsp:ReceiveResponse>",
        )

    # -- envelopes ---------------------------------------------------------------
    def _envelope(self, action: str, relates_to: str, body: str) -> bytes:
        xmlns = " ".join(f'xmlns:{k}="{v}"' for k, v in NS.items())
        return (
            f'<s:Envelope xml:lang="en-US" {xmlns}><s:Header>'
            f"<a:Action>{action}</a:Action>"
            f"<a:MessageID>uuid:{uuid.uuid4()}</a:MessageID>"
            "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
            f"<a:RelatesTo>{relates_to}</a:RelatesTo>"
            f"</s:Header><s:Body>{body}</s:Body></s:Envelope>"
        ).encode()

    def _ok(self, message_id: str, name: str, body: str, ns_action: str = "") -> None:
        action = ns_action or f"{SHELL_URI}/{name}"
        self._reply(200, self._envelope(action, message_id, body))

    def _fault(self, message_id: str, subcode: str, code: int, text: str) -> None:
        body = (
            "<s:Fault><s:Code><s:Value>s:Receiver</s:Value>"
            f"<s:Subcode><s:Value>w:{subcode}</s:Value></s:Subcode></s:Code>"
            f'<s:Reason><s:Text xml:lang="en-US">{_escape(text)}</s:Text></s:Reason>'
            f'<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" '
            f'Code="{code}" Machine="127.0.0.1"><f:Message>{_escape(text)}</f:Message>'
            "</f:WSManFault></s:Detail></s:Fault>"
        )
        action = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
        self._reply(500, self._envelope(action, message_id, body))

    def _reply(self, status: int, payload: bytes) -> None:
        content_type = "application/soap+xml;charset=UTF-8"
        if payload and getattr(self, "sealed", False):
            payload = self._seal(payload)
            content_type = (f'multipart/encrypted;protocol="{ENCRYPTED_PROTOCOL}";'
                            'boundary="Encrypted Boundary"')
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
