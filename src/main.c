/* main.c - dispatch to cmd_*.c; nothing else lives here. */
#include <stdio.h>
int main (void) { return 0; }
