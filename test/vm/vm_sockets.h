/*
 * vm_sockets.h: AF_VSOCK's address for the static musl test programs of test/vm (peer.c,
 * vsockstress.c). musl ships no <linux/vm_sockets.h>; this is the kernel ABI
 * (include/uapi/linux/vm_sockets.h): 16 bytes, the size of struct sockaddr.
 */
#ifndef NS_TEST_VM_SOCKETS_H
#define NS_TEST_VM_SOCKETS_H

#include <sys/socket.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define VMADDR_CID_ANY 0xFFFFFFFFu
struct sockaddr_vm {
    sa_family_t svm_family;
    unsigned short svm_reserved1;
    unsigned int svm_port;
    unsigned int svm_cid;
    unsigned char svm_zero[sizeof(struct sockaddr) - sizeof(sa_family_t) - sizeof(unsigned short) -
                           2 * sizeof(unsigned int)];
};

#endif
