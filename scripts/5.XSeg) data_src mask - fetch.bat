@echo off
rem 5.XSeg) data_src mask - fetch: copy the labelled faces of data_src/aligned to
rem data_src/aligned_xseg (a backup of the labels, and a faceset of labelled faces only).
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" xseg fetch ^
    --input-dir "%WORKSPACE%\data_src\aligned" ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
