/* A marker site that a parent hits, then forks children that hit it too
   (tests/test_fork.py; tests/test_sites.py checks its sites).  Built with
   -DSITE_NOP='...' to put other instructions than sys/sdt.h's 1-byte nop
   at the site: the 5-byte nop of the old convention, or the nop; nop10 of
   libbpf's usdt.h.  Prints how each child ended. */
#include <stdio.h>
#include <sys/sdt.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef SITE_NOP
#undef _SDT_NOP
#define _SDT_NOP SITE_NOP
#endif

__attribute__((noinline)) static void hit(int i)
{
    STAP_PROBE1(pst, tick, i);
}

int main(void)
{
    for (int i = 0; i < 5; i++)
        hit(i);
    for (int c = 0; c < 3; c++) {
        int status;
        pid_t pid = fork();
        if (pid == 0) {
            hit(100 + c);
            _exit(7 + c);
        }
        if (pid < 0 || waitpid(pid, &status, 0) != pid)
            return 1;
        if (WIFEXITED(status))
            printf("child %d: exit %d\n", c, WEXITSTATUS(status));
        else
            printf("child %d: signal %d\n", c, WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    }
    return 0;
}
