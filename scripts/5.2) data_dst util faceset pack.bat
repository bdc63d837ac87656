@echo off
rem 5.2) data_dst util faceset pack: pack data_dst/aligned into one faceset.pak.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" util ^
    --input-dir "%WORKSPACE%\data_dst\aligned" ^
    --pack-faceset ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
