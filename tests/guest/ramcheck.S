/* A kernel-less test guest for migrations run inside other guests,
 * where a Linux guest would take minutes to boot (TCG inside TCG).
 * QEMU boots it with -kernel (multiboot: 32-bit protected mode, flat,
 * no paging).
 *
 * It holds RAM_MIB MiB of pseudo-random data in 64 KiB blocks, each
 * block made from a seed kept in a table.  Every round rewrites one
 * block from a new seed and then checks every block against its seed,
 * and says so on the serial port as the Linux test guest's RAM keeper
 * does (tests/guest/init):
 *   "HANDOFF-RAM ok round=R mib=M"   every block as it was written
 *   "HANDOFF-RAM BAD file=B round=R" block B changed under it (a page
 *                                    lost or stale on the way)
 * A migration that loses or mixes up a page shows as BAD on the
 * destination; one that stops the guest shows as rounds that stop.
 *
 * Build: as --32 -o ramcheck.o ramcheck.S
 *        ld -m elf_i386 -Ttext=0x100000 -o ramcheck.elf ramcheck.o
 */
        .set RAM_MIB, 8
        .set BASE, 0x400000             /* the data: 4 MiB up */
        .set BLOCK, 0x10000
        .set NBLOCKS, RAM_MIB * 16
        .set SEEDS, 0x80000             /* the seed table, below 640 KiB */
        .set STACK, 0x90000
        .set COM1, 0x3f8

        .text
        .code32
        .globl _start

        /* The multiboot header: magic, flags (none: QEMU loads the
         * ELF as it is), checksum. */
        .align 4
        .long 0x1BADB002
        .long 0
        .long -0x1BADB002

_start:
        cli
        mov $STACK, %esp
        mov $boot_msg, %esi
        call puts

        /* Round 0: every block from a seed of its own. */
        xor %ebx, %ebx
1:      mov %ebx, %eax
        imul $0x9E3779B1, %eax, %eax
        inc %eax
        mov %eax, SEEDS(,%ebx,4)
        call fill
        inc %ebx
        cmp $NBLOCKS, %ebx
        jb 1b
        mov $filled_msg, %esi
        call puts

        xor %ebp, %ebp                  /* the round */
round:
        inc %ebp
        /* Rewrite block (round mod NBLOCKS) from a new seed. */
        mov %ebp, %eax
        xor %edx, %edx
        mov $NBLOCKS, %ecx
        div %ecx
        mov %edx, %ebx
        mov %ebp, %eax
        imul $0x85EBCA6B, %eax, %eax
        xor %ebx, %eax
        or $1, %eax
        mov %eax, SEEDS(,%ebx,4)
        call fill

        /* Check them all. */
        xor %edi, %edi                  /* blocks found bad */
        xor %ebx, %ebx
2:      call check
        jz 3f
        inc %edi
        mov $bad_msg, %esi
        call puts
        mov %ebx, %eax
        call putdec
        mov $round_msg, %esi
        call puts
        mov %ebp, %eax
        call putdec
        mov $'\n', %al
        call putc
3:      inc %ebx
        cmp $NBLOCKS, %ebx
        jb 2b
        test %edi, %edi
        jnz round
        mov $ok_msg, %esi
        call puts
        mov %ebp, %eax
        call putdec
        mov $mib_msg, %esi
        call puts
        jmp round

/* block_start: %edi = the address of block %ebx. */
block_start:
        mov %ebx, %edi
        shl $16, %edi
        add $BASE, %edi
        ret

/* fill: write block %ebx from its seed; check: ZF clear if block %ebx
 * differs from what its seed makes.  Both walk the block's linear
 * congruential sequence, x = x * 1664525 + 1013904223: walk writes
 * it if %dl is 0, compares with it otherwise. */
fill:
        push %edx
        xor %dl, %dl
        call walk
        pop %edx
        ret
check:
        push %edx
        mov $1, %dl
        call walk
        pop %edx
        ret
walk:
        push %edi
        push %ecx
        push %eax
        call block_start
        mov SEEDS(,%ebx,4), %eax
        mov $BLOCK / 4, %ecx
1:      imul $1664525, %eax, %eax
        add $1013904223, %eax
        test %dl, %dl
        jnz 2f
        mov %eax, (%edi)
        jmp 3f
2:      cmp %eax, (%edi)
        jne 4f
3:      add $4, %edi
        dec %ecx
        jnz 1b
        xor %eax, %eax                  /* ZF set: as written */
        jmp 5f
4:      or $1, %eax                     /* ZF clear: changed */
5:      pop %eax
        pop %ecx
        pop %edi
        ret

/* putc: %al to COM1, once it can take a byte. */
putc:
        push %edx
        push %eax
        mov $COM1 + 5, %dx
1:      in %dx, %al
        test $0x20, %al
        jz 1b
        pop %eax
        mov $COM1, %dx
        out %al, %dx
        pop %edx
        ret

/* puts: the NUL-terminated string at %esi. */
puts:
        push %eax
1:      lodsb
        test %al, %al
        jz 2f
        call putc
        jmp 1b
2:      pop %eax
        ret

/* putdec: %eax in decimal. */
putdec:
        push %eax
        push %ecx
        push %edx
        push %esi
        mov $numbuf + 11, %esi
        movb $0, (%esi)
        mov $10, %ecx
1:      xor %edx, %edx
        div %ecx
        add $'0', %dl
        dec %esi
        mov %dl, (%esi)
        test %eax, %eax
        jnz 1b
        call puts
        pop %esi
        pop %edx
        pop %ecx
        pop %eax
        ret

        .data
boot_msg:       .asciz "HANDOFF-BOOT mode=ramcheck\nHANDOFF-READY\n"
filled_msg:     .asciz "HANDOFF-RAM filled\n"
ok_msg:         .asciz "HANDOFF-RAM ok round="
mib_msg:        .asciz " mib=8\n"
bad_msg:        .asciz "HANDOFF-RAM BAD file="
round_msg:      .asciz " round="
numbuf:         .space 12
