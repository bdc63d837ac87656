@echo off
rem 3) cut video (drop video on me): cut a time range out of the video dropped on this script (or
rem given as the first argument) into NAME_cut.EXT next to it. Asks the start and end time, audio
rem track and bitrate.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
if "%~1"=="" (echo Drop a video file on this script, or give its path as the first argument. & pause & exit /b 2)
"%VENV_PY%" "%REPO_ROOT%\main.py" videoed cut-video ^
    --input-file %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
