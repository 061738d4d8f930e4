/* CPU time one durable write costs: `pwrite` of SIZE bytes (at 0, or appended)
 * then `fdatasync`, N times, in a file of 64 MiB written and synced first;
 * wall and CPU (getrusage, user + system) per call. On a virtual machine the
 * CPU time includes the exits its disk notifications cost.
 * cc -O2 bench/scripts/sync-cpu.c -o /tmp/sync-cpu && /tmp/sync-cpu DIR N SIZE APPEND */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static double cpu(){struct rusage r;getrusage(RUSAGE_SELF,&r);return r.ru_utime.tv_sec+r.ru_utime.tv_usec*1e-6+r.ru_stime.tv_sec+r.ru_stime.tv_usec*1e-6;}
int main(int c,char**v){
  char p[256];snprintf(p,256,"%s/cpuprobe.dat",v[1]);
  int n=atoi(v[2]); int sz=atoi(v[3]); int append=atoi(v[4]);
  int fd=open(p,O_RDWR|O_CREAT|O_TRUNC,0644);
  char *buf=malloc(1<<20);memset(buf,0,1<<20);
  for(int i=0;i<64;i++) pwrite(fd,buf,1<<20,(off_t)i<<20);
  fsync(fd);
  double w0=now(),c0=cpu(); off_t off=0;
  for(int i=0;i<n;i++){buf[0]=i; pwrite(fd,buf,sz,append?off:0); off+=sz; fdatasync(fd);}
  double w1=now(),c1=cpu();
  printf("size %d append %d: wall %.1f us/op, cpu %.1f us/op\n",sz,append,(w1-w0)/n*1e6,(c1-c0)/n*1e6);
  unlink(p);
}
