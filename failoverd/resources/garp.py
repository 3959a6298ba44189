"""A gratuitous ARP sent by the daemon itself, on a raw packet socket.

The VIP's announcement (resources.GratuitousArp) lies on the promotion path: the
address is added, announced, and only then does the next resource start. Habets'
arping (libpcap) needs 35-50 ms before its packet is out, measured in the lab:
libpcap opens and closes packet sockets while it looks the interface up, and each
close waits for the kernel. One AF_PACKET socket bound with protocol 0 (so that it
receives nothing and registers no hook) sends the same frame in ~0.1 ms.

The frame is what `arping -U` sends: an ARP request from the VIP to the VIP,
broadcast, so every neighbour that knows the address updates its entry. Where
this cannot work (no CAP_NET_RAW, not an Ethernet interface) the caller falls
back to arping.
"""

from __future__ import annotations

import socket
import struct
import threading

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARPHRD_ETHER = 1
BROADCAST = b"\xff" * 6


def frame(mac: bytes, ip: str) -> bytes:
    """Ethernet broadcast + ARP request (op 1): 'ip is at mac', asked of ip itself."""
    addr = socket.inet_aton(ip)
    arp = struct.pack("!HHBBH", ARPHRD_ETHER, ETH_P_IP, 6, 4, 1) + mac + addr + BROADCAST + addr
    return BROADCAST + mac + struct.pack("!H", ETH_P_ARP) + arp


def announce(interface: str, ip: str) -> None:
    """Send one gratuitous ARP for IPv4 `ip` out of `interface`; OSError if it cannot."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        s.bind((interface, 0))
        _, _, _, hatype, mac = s.getsockname()
        if hatype != ARPHRD_ETHER or len(mac) != 6:
            raise OSError(f"{interface} is not an Ethernet interface (hardware type {hatype})")
        s.send(frame(mac, ip))
    except BaseException:
        s.close()
        raise
    # Closing a packet socket waits for the kernel (~8 ms measured); the packet is
    # already out, so the promotion does not wait for that.
    threading.Thread(target=s.close, name="garp-close", daemon=True).start()
